"""Delivery: the outbox becomes the notifications table (one email or text message per
row, with its delivery status); webhook events, endpoints, deliveries and attempts; the
tenant's sender settings; a NOTIFY on every new message or event, so the dispatcher
starts its delivery at once (docs/notifications.md).

Messages written under 0.1.0 were never sent. Those of the last day are queued now, if
0.2.0 would write them too (0.1.0 texted any customer with a phone, and wrote messages of
every kind); the others are marked failed with the reason, as are older ones, which
would arrive stale. Webhook rows of the old outbox are dropped: no endpoint could
subscribe to them.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# The kinds each channel carries in 0.2.0 (db/notifications.py), as they were then.
EMAIL_KINDS = (
    "('cancelled', 'confirmed', 'expired', 'failed', 'held', 'no_show', 'reminder', 'rescheduled')"
)
SMS_KINDS = "('cancelled', 'confirmed', 'reminder', 'rescheduled')"

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("now()")


def _created_at(name: str = "created_at") -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def _tenant(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _booking(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["booking_id"],
        ["bookings.id"],
        name=op.f(f"fk_{table}_booking_id_bookings"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    for column in ("mail_sender_name", "mail_reply_to", "contact_email"):
        length = 200 if column == "mail_sender_name" else 254
        op.add_column("tenants", sa.Column(column, sa.String(length), nullable=True))

    _notifications_from_outbox()
    _webhooks()
    op.execute(
        """
        CREATE FUNCTION holdfast_dispatch_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Only for rows really inserted (ON CONFLICT DO NOTHING may insert none),
            -- and with one payload, which PostgreSQL sends once per transaction.
            IF EXISTS (SELECT 1 FROM inserted) THEN
                PERFORM pg_notify('holdfast_dispatch', '');
            END IF;
            RETURN NULL;
        END $$
        """
    )
    for table in ("notifications", "webhook_events"):
        op.execute(
            f"CREATE TRIGGER {table}_dispatch AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS inserted "
            "FOR EACH STATEMENT EXECUTE FUNCTION holdfast_dispatch_notify()"
        )


def _notifications_from_outbox() -> None:
    op.execute("DELETE FROM outbox WHERE channel = 'webhook'")
    op.rename_table("outbox", "notifications")
    op.execute("ALTER TABLE notifications RENAME CONSTRAINT pk_outbox TO pk_notifications")
    op.execute(
        "ALTER TABLE notifications RENAME CONSTRAINT fk_outbox_tenant_id_tenants "
        "TO fk_notifications_tenant_id_tenants"
    )
    op.execute(
        "ALTER TABLE notifications RENAME CONSTRAINT fk_outbox_booking_id_bookings "
        "TO fk_notifications_booking_id_bookings"
    )
    op.execute("ALTER TABLE notifications DROP CONSTRAINT ck_outbox_channel")
    op.drop_index("ix_outbox_status_created_at", table_name="notifications")
    op.drop_index("ix_outbox_booking_id", table_name="notifications")
    op.add_column("notifications", sa.Column("recipient", sa.Text(), nullable=True))
    op.execute("UPDATE notifications SET recipient = coalesce(payload->>'to', '')")
    op.alter_column("notifications", "recipient", nullable=False)
    for name, type_ in (
        ("provider_id", sa.Text()),
        ("last_error", sa.Text()),
        ("dispatched_at", sa.DateTime(timezone=True)),
        ("sent_at", sa.DateTime(timezone=True)),
    ):
        op.add_column("notifications", sa.Column(name, type_, nullable=True))
    op.add_column(
        "notifications", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("notifications", _created_at("updated_at"))
    op.alter_column("notifications", "status", server_default="queued")
    op.execute(
        f"""
        UPDATE notifications SET status = 'queued'
        WHERE created_at > now() - interval '1 day'
          AND ((channel = 'email' AND kind IN {EMAIL_KINDS})
               OR (channel = 'sms' AND kind IN {SMS_KINDS}
                   AND payload->'booking'->'customer'->'sms_opt_in' = 'true'))
        """
    )
    op.execute(
        """
        UPDATE notifications
        SET status = 'failed', dispatched_at = now(),
            last_error = 'written before delivery existed; not sent'
        WHERE status <> 'queued'
        """
    )
    op.create_check_constraint(
        op.f("ck_notifications_channel"), "notifications", "channel IN ('email', 'sms')"
    )
    op.create_check_constraint(
        op.f("ck_notifications_status"), "notifications", "status IN ('failed', 'queued', 'sent')"
    )
    op.create_index(
        "ix_notifications_booking_id_created_at", "notifications", ["booking_id", "created_at"]
    )
    op.create_index(
        "ix_notifications_undispatched",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_index(
        "ix_notifications_queued",
        "notifications",
        ["created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )


def _webhooks() -> None:
    jsonb = postgresql.JSONB(astext_type=sa.Text())
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("booking_id", sa.Uuid(), nullable=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("payload", jsonb, nullable=False),
        _created_at(),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        _tenant("webhook_events"),
        _booking("webhook_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    op.create_index(
        "ix_webhook_events_undispatched",
        "webhook_events",
        ["created_at"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("previous_secret", sa.Text(), nullable=True),
        sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), server_default="enabled", nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "status IN ('disabled', 'enabled')", name=op.f("ck_webhook_endpoints_status")
        ),
        _tenant("webhook_endpoints"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    op.create_index("ix_webhook_endpoints_tenant_id_id", "webhook_endpoints", ["tenant_id", "id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        _created_at(),
        _created_at("updated_at"),
        sa.CheckConstraint(
            "status IN ('delivered', 'failed', 'pending')",
            name=op.f("ck_webhook_deliveries_status"),
        ),
        _tenant("webhook_deliveries"),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_webhook_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["webhook_events.id"],
            name=op.f("fk_webhook_deliveries_event_id_webhook_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(
        "ix_webhook_deliveries_endpoint_id_id", "webhook_deliveries", ["endpoint_id", "id"]
    )
    op.create_index("ix_webhook_deliveries_event_id", "webhook_deliveries", ["event_id"])
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_deliveries_undispatched",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=sa.text("dispatched_at IS NULL"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        _created_at("at"),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["webhook_deliveries.id"],
            name=op.f("fk_webhook_attempts_delivery_id_webhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_attempts")),
    )
    op.create_index("ix_webhook_attempts_delivery_id_at", "webhook_attempts", ["delivery_id", "at"])


def downgrade() -> None:
    raise NotImplementedError("0006 is not reversible: delivery state would be lost")
