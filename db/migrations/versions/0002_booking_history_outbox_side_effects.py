"""Booking history (audit events), the delivery outbox, side-effect outcomes on bookings,
and the booking id an idempotency key reserved.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column(
            "data", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_booking_events_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_booking_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_events")),
    )
    op.create_index(
        op.f("ix_booking_events_booking_id_at"),
        "booking_events",
        ["booking_id", "at"],
        unique=False,
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "channel IN ('email', 'sms', 'webhook')", name=op.f("ck_outbox_channel")
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_outbox_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_outbox_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(op.f("ix_outbox_booking_id"), "outbox", ["booking_id"], unique=False)
    op.create_index(
        op.f("ix_outbox_status_created_at"), "outbox", ["status", "created_at"], unique=False
    )
    op.add_column(
        "bookings",
        sa.Column(
            "side_effects",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
    )
    op.add_column(
        "bookings",
        sa.Column("resource_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
    )
    op.create_index(
        "ix_bookings_resource_ids",
        "bookings",
        ["resource_ids"],
        unique=False,
        postgresql_using="gin",
    )
    op.add_column("idempotency_records", sa.Column("booking_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("idempotency_records", "booking_id")
    op.drop_index("ix_bookings_resource_ids", table_name="bookings", postgresql_using="gin")
    op.drop_column("bookings", "resource_ids")
    op.drop_column("bookings", "side_effects")
    op.drop_index(op.f("ix_outbox_status_created_at"), table_name="outbox")
    op.drop_index(op.f("ix_outbox_booking_id"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_booking_events_booking_id_at"), table_name="booking_events")
    op.drop_table("booking_events")
