"""API key kinds: secret keys for servers, publishable keys for browsers and apps (which
may only look up availability and make and manage their own bookings), each with a name
and, for browsers, the origins allowed to use it (docs/security.md#api-keys). Keys issued
before 0.4.0 are secret keys.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("kind", sa.String(length=16), server_default="secret", nullable=False),
    )
    op.add_column(
        "api_keys", sa.Column("name", sa.String(length=200), server_default="", nullable=False)
    )
    op.add_column(
        "api_keys",
        sa.Column(
            "allowed_origins",
            postgresql.ARRAY(sa.String(length=200)),
            server_default="{}",
            nullable=False,
        ),
    )
    op.create_check_constraint(
        op.f("ck_api_keys_kind"), "api_keys", "kind IN ('secret', 'publishable')"
    )
    op.create_index(op.f("ix_api_keys_tenant_id_id"), "api_keys", ["tenant_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_tenant_id_id"), table_name="api_keys")
    op.drop_constraint(op.f("ck_api_keys_kind"), "api_keys", type_="check")
    op.drop_column("api_keys", "allowed_origins")
    op.drop_column("api_keys", "name")
    op.drop_column("api_keys", "kind")
