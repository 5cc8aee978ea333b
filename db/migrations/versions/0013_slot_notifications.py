"""Live availability: every change that can move a tenant's free slots NOTIFYs
`holdfast_slots`, in the transaction that makes it, so every API process hears each
committed change once and nothing that rolled back (docs/capacity.md#live-availability).

What counts: an allocation taken, released or moved (held to confirmed changes nothing);
time off added, moved or removed; a resource created or its hours, capacity, calendar
busy time, tags, location or activity changed; a service changed. The payload names the
tenant, the resource (and its kind) or the service, and the span in epoch seconds, or
no span when the whole range may have changed.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "IN ('confirmed', 'held')"

_FUNCTION = f"""
CREATE FUNCTION holdfast_slots_notify(
    tenant uuid, resource uuid, kind text, service uuid, span tstzrange
) RETURNS void LANGUAGE sql AS $$
    SELECT pg_notify('holdfast_slots', json_build_object(
        'tenant', tenant, 'resource', resource, 'kind', kind, 'service', service,
        'lo', floor(extract(epoch FROM lower(span)))::bigint,
        'hi', ceil(extract(epoch FROM upper(span)))::bigint)::text)
$$;

CREATE FUNCTION holdfast_slots_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'allocations' THEN
        IF TG_OP = 'UPDATE' AND OLD.span = NEW.span
           AND (OLD.status {LIVE}) = (NEW.status {LIVE}) THEN
            RETURN NULL;
        END IF;
        IF TG_OP <> 'INSERT' AND OLD.status {LIVE} THEN
            PERFORM holdfast_slots_notify(OLD.tenant_id, OLD.resource_id, NULL, NULL, OLD.span);
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status {LIVE} THEN
            PERFORM holdfast_slots_notify(NEW.tenant_id, NEW.resource_id, NULL, NULL, NEW.span);
        END IF;
    ELSIF TG_TABLE_NAME = 'time_off' THEN
        IF TG_OP <> 'INSERT' THEN
            PERFORM holdfast_slots_notify(OLD.tenant_id, OLD.resource_id, NULL, NULL, OLD.span);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM holdfast_slots_notify(NEW.tenant_id, NEW.resource_id, NULL, NULL, NEW.span);
        END IF;
    ELSIF TG_TABLE_NAME = 'resources' THEN
        IF TG_OP = 'UPDATE'
           AND (OLD.weekly_hours, OLD.date_overrides, OLD.capacity, OLD.calendar_busy,
                OLD.tags, OLD.location_id, OLD.active, OLD.timezone)
               IS NOT DISTINCT FROM
               (NEW.weekly_hours, NEW.date_overrides, NEW.capacity, NEW.calendar_busy,
                NEW.tags, NEW.location_id, NEW.active, NEW.timezone) THEN
            RETURN NULL;
        END IF;
        PERFORM holdfast_slots_notify(NEW.tenant_id, NEW.id, NEW.kind, NULL, NULL);
    ELSE
        PERFORM holdfast_slots_notify(NEW.tenant_id, NULL, NULL, NEW.id, NULL);
    END IF;
    RETURN NULL;
END $$;
"""

_TRIGGERS = {
    "allocations": "INSERT OR UPDATE OF status, span OR DELETE",
    "time_off": "INSERT OR UPDATE OR DELETE",
    "resources": "INSERT OR UPDATE",
    "services": "UPDATE",
}


def upgrade() -> None:
    op.execute(_FUNCTION)
    for table, events in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER holdfast_slots_changed AFTER {events} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION holdfast_slots_changed()"
        )


def downgrade() -> None:
    for table in _TRIGGERS:
        op.execute(f"DROP TRIGGER holdfast_slots_changed ON {table}")
    op.execute("DROP FUNCTION holdfast_slots_changed()")
    op.execute("DROP FUNCTION holdfast_slots_notify(uuid, uuid, text, uuid, tstzrange)")
