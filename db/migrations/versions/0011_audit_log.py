"""The tamper-evident audit log (docs/security.md#audit-log): a trigger appends an entry
for every change to a tenant's configuration and bookings, chained by hash per tenant
and signed with a key the database never holds.

A trigger, not the application, writes the entries, so no code path (the API, the
worker, a script, an owner's psql session) changes an audited row without one. It is a
deferred constraint trigger: it runs at commit, so the per-tenant head it locks is the
last lock a transaction takes, held only while committing, and never deadlocks with the
row locks the transaction took before.

The HMAC key stays outside: each application connection brings the HMAC pads of
`AUDIT_KEY` as startup options (db/audit.py `connection_options`). PostgreSQL here has
no pgcrypto, but its builtin `sha256()` is enough for HMAC-SHA256 from precomputed pads.
A session without them (the owner's psql, a migration) still writes its entry, unsigned,
and `holdfast audit verify` reports it.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from db.migrations.tenancy import drop_tenant_table, tenant_table

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Audited tables, each with the columns whose changes are bookkeeping, not anyone's act:
# an UPDATE that changes only these writes no entry, and the row digests leave them out.
# Frozen here as of this revision; docs/security.md#audit-log says why each is ignored.
AUDITED: dict[str, tuple[str, ...]] = {
    "tenants": (),
    "api_keys": (),  # a key's last use lives in its rate-limit bucket, not here
    "locations": ("updated_at",),
    # `calendar_busy` is the merged busy time every calendar sync rewrites.
    "resources": ("updated_at", "calendar_busy"),
    "time_off": (),
    "services": ("updated_at",),
    # `side_effects` holds each step's last outcome (a notification sent, an event
    # exported): the system's bookkeeping, already in the booking's history.
    "bookings": ("updated_at", "side_effects"),
    # `failing_since` moves with deliveries; the disable it leads to is logged.
    "webhook_endpoints": ("updated_at", "failing_since"),
    # Every sync moves the cursor, its window and time, the last error, and renews the
    # push channel; the status it changes (active, reauth_required) is logged.
    "calendar_connections": (
        "updated_at",
        "last_synced_at",
        "last_error",
        "sync_cursor",
        "window_end",
        "channel_id",
        "channel",
    ),
    "calendar_feeds": (),
}

# HMAC-SHA256 of a message under the session's pads (`holdfast.audit_ipad`/`_opad`, hex
# of 64 bytes each), or NULL without them: an entry written by a session that does not
# hold the key is left unsigned, never signed with a guess.
_HMAC = """
CREATE FUNCTION holdfast_audit_hmac(message text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN ipad ~ '^[0-9a-f]{128}$' AND opad ~ '^[0-9a-f]{128}$' THEN
        encode(sha256(decode(opad, 'hex')
            || sha256(decode(ipad, 'hex') || convert_to(message, 'UTF8'))), 'hex')
    END
    FROM (SELECT current_setting('holdfast.audit_ipad', true) AS ipad,
                 current_setting('holdfast.audit_opad', true) AS opad) AS pads
$$
"""

# The trigger. TG_ARGV: the table's ignored columns. What is hashed is each field as
# `<length>:<value>` (NULL as empty), so that no two fields can run together into the
# same text; db/audit.py recomputes it in Python. TimeZone is UTC for the row digests:
# `to_jsonb` writes times in the session's zone, and a row's digest should not depend
# on who changed it.
_TRIGGER = """
CREATE FUNCTION holdfast_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema}, pg_catalog
SET TimeZone = 'UTC'
AS $$
DECLARE
    ignored text[] := coalesce(TG_ARGV, '{{}}');  -- NULL, not empty, without arguments
    before_row jsonb;
    after_row jsonb;
    the_row jsonb;
    changed_columns text[];
    tenant uuid;
    object text;
    last_seq bigint;
    prev text;
    entry_seq bigint;
    entry_at timestamptz;
    entry_actor text;
    digest_before text;
    digest_after text;
    content text;
    entry_hash text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        before_row := to_jsonb(OLD) - ignored;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        after_row := to_jsonb(NEW) - ignored;
    END IF;
    the_row := coalesce(after_row, before_row);
    -- Names only, never values: a column changed if it differs from the row before (a
    -- missing row is all NULL, so an insert names what it set, a delete what it held).
    SELECT coalesce(array_agg(k ORDER BY k), '{{}}') INTO changed_columns
    FROM jsonb_object_keys(the_row) AS k
    WHERE nullif(before_row -> k, 'null'::jsonb) IS DISTINCT FROM
          nullif(after_row -> k, 'null'::jsonb);
    IF TG_OP = 'UPDATE' AND changed_columns = '{{}}' THEN
        RETURN NULL;  -- only bookkeeping changed
    END IF;

    tenant := (the_row ->> CASE TG_TABLE_NAME WHEN 'tenants' THEN 'id' ELSE 'tenant_id' END)::uuid;
    object := the_row ->> CASE TG_TABLE_NAME WHEN 'calendar_feeds' THEN 'resource_id' ELSE 'id' END;
    entry_actor := coalesce(nullif(current_setting('holdfast.actor', true), ''),
                            'db:' || session_user);
    digest_before := holdfast_audit_hmac(before_row::text);
    digest_after := holdfast_audit_hmac(after_row::text);

    -- The head: the last lock this transaction takes (the trigger runs at commit). A
    -- tenant's first entry makes it; two first entries at once wait on its key.
    SELECT h.seq, h.hash INTO last_seq, prev FROM audit_heads h
    WHERE h.tenant_id = tenant FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (tenant, 0, repeat('0', 64))
        ON CONFLICT (tenant_id) DO NOTHING;
        SELECT h.seq, h.hash INTO last_seq, prev FROM audit_heads h
        WHERE h.tenant_id = tenant FOR UPDATE;
    END IF;
    entry_seq := last_seq + 1;
    entry_at := clock_timestamp();  -- under the lock: times follow the chain's order

    SELECT string_agg(length(coalesce(f, '')) || ':' || coalesce(f, ''), '' ORDER BY n)
    INTO content
    FROM unnest(ARRAY[
        tenant::text,
        entry_seq::text,
        to_char(entry_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        entry_actor,
        lower(TG_OP),
        TG_TABLE_NAME::text,
        object,
        array_to_string(changed_columns, ','),
        digest_before,
        digest_after
    ]) WITH ORDINALITY AS fields (f, n);
    entry_hash := encode(sha256(convert_to(prev || content, 'UTF8')), 'hex');

    INSERT INTO audit_events (tenant_id, seq, at, actor, action, object_type, object_id,
        changed, before_digest, after_digest, prev_hash, hash, hmac)
    VALUES (tenant, entry_seq, entry_at, entry_actor, lower(TG_OP), TG_TABLE_NAME, object,
        changed_columns, digest_before, digest_after, prev, entry_hash,
        holdfast_audit_hmac(entry_hash));
    UPDATE audit_heads SET seq = entry_seq, hash = entry_hash WHERE tenant_id = tenant;
    RETURN NULL;
END
$$
"""


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def upgrade() -> None:
    schema = op.get_bind().exec_driver_sql("SELECT current_schema()").scalar_one()
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column(
            "at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("object_type", sa.Text(), nullable=False),
        sa.Column("object_id", sa.Text(), nullable=True),
        sa.Column("changed", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("before_digest", sa.Text(), nullable=True),
        sa.Column("after_digest", sa.Text(), nullable=True),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("hmac", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('delete', 'insert', 'update')", name=op.f("ck_audit_events_action")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("tenant_id", "seq", name=op.f("uq_audit_events_tenant_id_seq")),
    )
    op.create_index(
        op.f("ix_audit_events_tenant_id_object_type_object_id_seq"),
        "audit_events",
        ["tenant_id", "object_type", "object_id", "seq"],
    )
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_audit_heads")),
    )
    # The application role reads its tenant's entries and writes none: the trigger, run
    # as the owner, is the only writer.
    tenant_table("audit_events", grant="SELECT")
    op.execute("ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY")

    op.execute(_HMAC)
    op.execute("REVOKE ALL ON FUNCTION holdfast_audit_hmac(text) FROM PUBLIC")
    op.execute(_TRIGGER.format(schema=schema))
    for table, ignored in AUDITED.items():
        arguments = ", ".join(_literal(column) for column in ignored)
        op.execute(
            f"CREATE CONSTRAINT TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {table}"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            f" EXECUTE FUNCTION holdfast_audit({arguments})"
        )


def downgrade() -> None:
    for table in AUDITED:
        op.execute(f"DROP TRIGGER audit ON {table}")
    op.execute("DROP FUNCTION holdfast_audit()")
    op.execute("DROP FUNCTION holdfast_audit_hmac(text)")
    op.execute("ALTER TABLE audit_heads DISABLE ROW LEVEL SECURITY")
    drop_tenant_table("audit_events")
    op.drop_table("audit_heads")
    op.drop_index(
        op.f("ix_audit_events_tenant_id_object_type_object_id_seq"), table_name="audit_events"
    )
    op.drop_table("audit_events")
