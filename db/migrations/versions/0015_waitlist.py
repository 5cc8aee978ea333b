"""Waitlist (docs/waitlist.md): entries waiting for a service in a range of time, served
in join order; an offer is a booking held for the entry, for the service's
`offer_minutes`.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.migrations.tenancy import drop_tenant_table, tenant_table

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = "('booked', 'declined', 'expired', 'left', 'offered', 'waiting')"


def upgrade() -> None:
    op.add_column(
        "services", sa.Column("offer_minutes", sa.Integer(), server_default="15", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_services_offer_minutes"), "services", "offer_minutes BETWEEN 1 AND 10080"
    )
    op.create_table(
        "waitlist_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.Uuid(), nullable=False),
        sa.Column("range_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("range_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource_ids", postgresql.ARRAY(sa.Uuid()), server_default="{}", nullable=False),
        sa.Column("customer", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="waiting", nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("offer_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(f"status IN {STATUSES}", name=op.f("ck_waitlist_entries_status")),
        sa.CheckConstraint("range_end > range_start", name=op.f("ck_waitlist_entries_range")),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_waitlist_entries_booking_id_bookings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_waitlist_entries_service_id_services"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_waitlist_entries_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_entries")),
    )
    op.create_index(
        op.f("ix_waitlist_entries_tenant_id_status_created_at"),
        "waitlist_entries",
        ["tenant_id", "status", "created_at"],
    )
    tenant_table("waitlist_entries")


def downgrade() -> None:
    drop_tenant_table("waitlist_entries")
    op.drop_index(
        op.f("ix_waitlist_entries_tenant_id_status_created_at"), table_name="waitlist_entries"
    )
    op.drop_table("waitlist_entries")
    op.drop_constraint(op.f("ck_services_offer_minutes"), "services")
    op.drop_column("services", "offer_minutes")
