"""Stripe webhook events, recorded once each.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("intent_id", sa.String(length=255), nullable=True),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_events")),
    )
    op.create_index(
        op.f("ix_payment_events_intent_id"), "payment_events", ["intent_id"], unique=False
    )
    op.create_index(
        op.f("ix_payment_events_outcome_received_at"),
        "payment_events",
        ["outcome", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_events_outcome_received_at"), table_name="payment_events")
    op.drop_index(op.f("ix_payment_events_intent_id"), table_name="payment_events")
    op.drop_table("payment_events")
