"""Booking series: a recurring booking (docs/series.md), one row for the series and its
occurrences as ordinary bookings pointing at it. The series row is written with its
bookings, in the one transaction that claims them.

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.migrations.tenancy import drop_tenant_table, tenant_table

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "booking_series",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("service_id", sa.Uuid(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rrule", sa.Text(), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.Column(
            "skipped", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False
        ),
        sa.Column("workflow_id", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "policy IN ('all_or_nothing', 'skip_conflicts')", name=op.f("ck_booking_series_policy")
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_booking_series_service_id_services"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_booking_series_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_booking_series")),
    )
    op.create_index(op.f("ix_booking_series_tenant_id"), "booking_series", ["tenant_id"])
    tenant_table("booking_series")
    op.add_column("bookings", sa.Column("series_id", sa.Uuid(), nullable=True))
    op.create_foreign_key(
        op.f("fk_bookings_series_id_booking_series"),
        "bookings",
        "booking_series",
        ["series_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(
        op.f("ix_bookings_series_id"),
        "bookings",
        ["series_id"],
        postgresql_where=sa.text("series_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_bookings_series_id"), table_name="bookings")
    op.drop_constraint(op.f("fk_bookings_series_id_booking_series"), "bookings")
    op.drop_column("bookings", "series_id")
    drop_tenant_table("booking_series")
    op.drop_index(op.f("ix_booking_series_tenant_id"), table_name="booking_series")
    op.drop_table("booking_series")
