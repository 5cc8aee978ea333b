"""Calendars: connections to Google and Outlook calendars (credentials sealed), the
booking events exported to them, per-resource ICS feeds; imported busy time belongs to
its connection, one row per event of it (docs/calendars.md).

No busy time was imported before 0.3.0, so the old uniqueness (resource, source, event)
gives way to (connection, event) without touching data.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "resources",
        sa.Column(
            "calendar_busy", postgresql.TSTZMULTIRANGE(), server_default="{}", nullable=False
        ),
    )
    op.create_table(
        "calendar_connections",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("calendar_id", sa.String(length=255), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("import_busy", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("export_events", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("status", sa.String(length=24), server_default="syncing", nullable=False),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sync_cursor", sa.Text(), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("channel_id", sa.String(length=255), nullable=True),
        sa.Column("channel", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
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
        sa.CheckConstraint(
            "provider IN ('google', 'microsoft')", name=op.f("ck_calendar_connections_provider")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'disabled', 'reauth_required', 'syncing')",
            name=op.f("ck_calendar_connections_status"),
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_calendar_connections_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_calendar_connections_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_connections")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_calendar_connections_channel_id")),
    )
    op.create_index(
        op.f("ix_calendar_connections_tenant_id_resource_id"),
        "calendar_connections",
        ["tenant_id", "resource_id"],
        unique=False,
    )
    op.create_index(
        "uq_calendar_connections_live_calendar",
        "calendar_connections",
        ["resource_id", "provider", "calendar_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'disabled'"),
    )
    op.create_table(
        "calendar_feeds",
        sa.Column("resource_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["resource_id"],
            ["resources.id"],
            name=op.f("fk_calendar_feeds_resource_id_resources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_calendar_feeds_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("resource_id", name=op.f("pk_calendar_feeds")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feeds_token_hash")),
    )
    op.create_table(
        "calendar_events",
        sa.Column("booking_id", sa.Uuid(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=24), server_default="pending", nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('deleted', 'deleted_by_hand', 'failed', 'pending', 'written')",
            name=op.f("ck_calendar_events_status"),
        ),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
            name=op.f("fk_calendar_events_booking_id_bookings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["calendar_connections.id"],
            name=op.f("fk_calendar_events_connection_id_calendar_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenants.id"],
            name=op.f("fk_calendar_events_tenant_id_tenants"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("booking_id", "connection_id", name=op.f("pk_calendar_events")),
    )
    op.create_index(
        op.f("ix_calendar_events_connection_id_external_id"),
        "calendar_events",
        ["connection_id", "external_id"],
        unique=False,
    )
    op.add_column("external_busy", sa.Column("connection_id", sa.Uuid(), nullable=True))
    op.drop_constraint(
        op.f("uq_external_busy_resource_id_source_external_id"), "external_busy", type_="unique"
    )
    op.create_unique_constraint(
        op.f("uq_external_busy_connection_id_external_id"),
        "external_busy",
        ["connection_id", "external_id"],
    )
    op.create_foreign_key(
        op.f("fk_external_busy_connection_id_calendar_connections"),
        "external_busy",
        "calendar_connections",
        ["connection_id"],
        ["id"],
        ondelete="CASCADE",
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_external_busy_connection_id_calendar_connections"),
        "external_busy",
        type_="foreignkey",
    )
    op.drop_constraint(
        op.f("uq_external_busy_connection_id_external_id"), "external_busy", type_="unique"
    )
    op.create_unique_constraint(
        op.f("uq_external_busy_resource_id_source_external_id"),
        "external_busy",
        ["resource_id", "source", "external_id"],
        postgresql_nulls_not_distinct=False,
    )
    op.drop_column("external_busy", "connection_id")
    op.drop_index(
        op.f("ix_calendar_events_connection_id_external_id"), table_name="calendar_events"
    )
    op.drop_table("calendar_events")
    op.drop_table("calendar_feeds")
    op.drop_index(
        "uq_calendar_connections_live_calendar",
        table_name="calendar_connections",
        postgresql_where=sa.text("status <> 'disabled'"),
    )
    op.drop_index(
        op.f("ix_calendar_connections_tenant_id_resource_id"), table_name="calendar_connections"
    )
    op.drop_table("calendar_connections")
    op.drop_column("resources", "calendar_busy")
