"""A tenant's slug: its booking page's address, /book/{slug}/{service code}
(docs/booking-page.md).

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("slug", sa.String(length=63), nullable=True))
    op.create_unique_constraint(op.f("uq_tenants_slug"), "tenants", ["slug"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_tenants_slug"), "tenants")
    op.drop_column("tenants", "slug")
