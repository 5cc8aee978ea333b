"""Row-level security on every tenant table, and the role the API and the worker connect
as (docs/security.md#row-level-security).

A transaction sees a tenant's rows once it has set `holdfast.tenant_id` (the API does,
from the request's key), or every tenant's once `holdfast.all_tenants` is on (the worker's
and the operator's connections, set as they connect). With neither, it sees nothing.

The application role may not read the rate-limit buckets: two functions owned by the
tables' owner take a token for it, one of them resolving the API key in the same statement
(the key is looked up before any tenant is known).

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

from db.migrations.tenancy import APP_ROLE, drop_tenant_table, tenant_table

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = (
    "api_keys",
    "locations",
    "resources",
    "time_off",
    "services",
    "bookings",
    "allocations",
    "idempotency_records",
    "booking_events",
    "notifications",
    "webhook_events",
    "webhook_endpoints",
    "webhook_deliveries",
    "calendar_connections",
    "calendar_feeds",
    "calendar_events",
    "external_busy",
)
# Rows that belong to a tenant through their parent, or to no tenant (Stripe's events,
# read across tenants by the webhook route and the operator).
OTHER_TABLES = {
    "tenants": "holdfast_visible(id)",
    "webhook_attempts": (
        "EXISTS (SELECT FROM webhook_deliveries d WHERE d.id = webhook_attempts.delivery_id)"
    ),
    "payment_events": "current_setting('holdfast.all_tenants', true) = 'on'",
}


def _take_token(new_bucket: str, capacity: str) -> str:
    """Takes a token from a bucket (db/rate_limits.py), making it (`new_bucket`: the row of
    a bucket's first request) full less one if it is new. A bucket holds `capacity`, a
    minute's worth, and refills continuously."""
    refilled = (
        f"LEAST({capacity}, b.tokens"
        f" + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at) * {capacity} / 60)"
    )
    return f"""
        INSERT INTO rate_limits AS b (bucket, tokens, refilled_at, allowed)
        {new_bucket}
        ON CONFLICT (bucket) DO UPDATE SET
            tokens = CASE WHEN {refilled} >= 1 THEN {refilled} - 1 ELSE {refilled} END,
            allowed = {refilled} >= 1,
            refilled_at = clock_timestamp()
        RETURNING b.tokens, b.allowed"""


def upgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
            END IF;
        END $$
        """
    )
    op.execute(f"GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}")
    op.execute(
        """
        CREATE FUNCTION holdfast_visible(tenant uuid) RETURNS boolean
        LANGUAGE sql STABLE PARALLEL SAFE AS $$
            SELECT current_setting('holdfast.all_tenants', true) = 'on'
                OR tenant = NULLIF(current_setting('holdfast.tenant_id', true), '')::uuid
        $$
        """
    )
    for table in TENANT_TABLES:
        tenant_table(table)
    for table, visible in OTHER_TABLES.items():
        tenant_table(table, visible=visible)
    definer = f"LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_catalog"
    op.execute(
        f"""
        CREATE FUNCTION holdfast_take_token(bucket_name text, per_minute integer)
        RETURNS TABLE (tokens double precision, allowed boolean) VOLATILE {definer} AS $$
        {
            _take_token(
                "VALUES (bucket_name, per_minute - 1.0, clock_timestamp(), true)",
                "per_minute::double precision",
            )
        }
        $$
        """
    )
    # The key and its token in one statement: a revoked key is refused by the very next
    # request in every API process (nothing caches it), and resolving the key costs no
    # round trip of its own. The bucket's `refilled_at` is the key's last use.
    op.execute(
        f"""
        CREATE FUNCTION holdfast_take_key_token(
            key_digest text, secret_per_minute integer, publishable_per_minute integer
        ) RETURNS TABLE (
            key_id uuid, key_tenant_id uuid, key_kind text, key_origins text[],
            key_per_minute integer, tokens double precision, allowed boolean
        ) VOLATILE {definer} AS $$
            WITH key AS (
                SELECT k.id, k.tenant_id, k.kind, k.allowed_origins,
                    CASE k.kind WHEN 'publishable' THEN publishable_per_minute
                        ELSE secret_per_minute END AS per_minute
                FROM api_keys k WHERE k.key_hash = key_digest AND k.revoked_at IS NULL
            ), taken AS ({
            _take_token(
                "SELECT 'key:' || key.id, key.per_minute - 1.0, clock_timestamp(), true FROM key",
                "(SELECT key.per_minute FROM key)::double precision",
            )
        })
            SELECT key.id, key.tenant_id, key.kind::text, key.allowed_origins::text[],
                key.per_minute, taken.tokens, taken.allowed
            FROM key, taken
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION holdfast_keys_last_used(key_ids uuid[])
        RETURNS TABLE (key_id uuid, last_used_at timestamptz) STABLE {definer} AS $$
            SELECT k.id, b.refilled_at FROM api_keys k
            JOIN rate_limits b ON b.bucket = 'key:' || k.id
            WHERE k.id = ANY(key_ids) AND holdfast_visible(k.tenant_id)
        $$
        """
    )
    for function in (
        "holdfast_take_token(text, integer)",
        "holdfast_take_key_token(text, integer, integer)",
        "holdfast_keys_last_used(uuid[])",
    ):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function} TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION holdfast_keys_last_used(uuid[])")
    op.execute("DROP FUNCTION holdfast_take_key_token(text, integer, integer)")
    op.execute("DROP FUNCTION holdfast_take_token(text, integer)")
    for table in (*TENANT_TABLES, *OTHER_TABLES):
        drop_tenant_table(table)
    op.execute("DROP FUNCTION holdfast_visible(uuid)")
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.execute(f"REVOKE USAGE ON SCHEMA {schema} FROM {APP_ROLE}")
