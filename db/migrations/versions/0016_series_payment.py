"""One payment for a whole series (docs/series.md#payment): the service's
`series_payment`, the series' payment and its client secret, and Stripe events that
belong to a series rather than to one booking.

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "services",
        sa.Column(
            "series_payment", sa.String(length=16), server_default="per_occurrence", nullable=False
        ),
    )
    op.create_check_constraint(
        op.f("ck_services_series_payment"),
        "services",
        "series_payment IN ('per_occurrence', 'per_series')",
    )
    op.add_column(
        "booking_series",
        sa.Column("payment", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("booking_series", sa.Column("payment_client_secret", sa.Text(), nullable=True))
    op.add_column("payment_events", sa.Column("series_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("payment_events", "series_id")
    op.drop_column("booking_series", "payment_client_secret")
    op.drop_column("booking_series", "payment")
    op.drop_constraint(op.f("ck_services_series_payment"), "services")
    op.drop_column("services", "series_payment")
