"""The card's client secret lives in its own column, only while the booking awaits
payment; every copy kept elsewhere (the payment JSON, the history, the stored idempotent
answers, the Stripe events) is removed.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bookings", sa.Column("payment_client_secret", sa.Text(), nullable=True))
    op.execute(
        "UPDATE bookings SET payment_client_secret = payment->>'client_secret' "
        "WHERE status = 'pending_payment'"
    )
    op.execute(
        "UPDATE bookings SET payment = payment - 'client_secret' - 'refunds' "
        "WHERE jsonb_typeof(payment) = 'object'"
    )
    op.execute(
        "UPDATE booking_events SET data = data - 'client_secret' WHERE data ? 'client_secret'"
    )
    op.execute(
        "UPDATE idempotency_records "
        "SET response_body = jsonb_set(response_body, '{payment,client_secret}', 'null') "
        "WHERE response_body->'payment' ? 'client_secret'"
    )
    op.execute(
        "UPDATE payment_events SET payload = payload #- '{data,object,client_secret}' "
        "WHERE payload->'data'->'object' ? 'client_secret'"
    )


def downgrade() -> None:
    # The code before 0005 reads the secret from the payment JSON (null once paid).
    op.execute(
        "UPDATE bookings SET payment = payment || "
        "jsonb_build_object('client_secret', payment_client_secret) "
        "WHERE jsonb_typeof(payment) = 'object'"
    )
    op.drop_column("bookings", "payment_client_secret")
