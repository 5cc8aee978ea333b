"""Capacity: a resource holds `capacity` seats (a class of 12, a room of 4 desks), a
service takes `seats_per_booking` of them, and the database refuses a claim beyond
capacity as surely as it refuses an overlap (docs/capacity.md).

Each allocation now names a seat, and the exclusion constraint is per seat: two live
allocations of one seat of one resource never overlap. A seat index must lie below the
resource's capacity (a trigger, as a check cannot read another table), so capacity 3
admits three overlapping allocations and refuses the fourth whatever the application
counted. In a group session, a resource of capacity 1 (the instructor) is shared by the
session's attendees: allocations carrying the same `group_session` may overlap on it, any
other may not.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE = "status IN ('confirmed', 'held')"

# A seat exists only below its resource's capacity, and only a resource of capacity 1 is
# shared by a session. The resource row is read as the writer sees it: a claim holds it
# FOR SHARE, so a capacity change waits for the claim or the claim for it.
_SEAT_CHECK = f"""
CREATE FUNCTION holdfast_allocation_seat() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    seats integer;
BEGIN
    IF NOT (NEW.{LIVE}) THEN
        RETURN NEW;
    END IF;
    SELECT capacity INTO seats FROM resources WHERE id = NEW.resource_id;
    IF seats IS NULL OR NEW.seat >= seats THEN
        RAISE EXCEPTION 'allocations_within_capacity: seat % of % is beyond its capacity',
            NEW.seat, NEW.resource_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'allocations_within_capacity';
    END IF;
    IF NEW.group_session IS NOT NULL AND seats <> 1 THEN
        RAISE EXCEPTION 'allocations_within_capacity: only capacity 1 is shared by a session'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'allocations_within_capacity';
    END IF;
    RETURN NEW;
END $$;
"""

# Capacity cannot shrink below a seat that a live allocation still holds, nor grow from 1
# while a session shares the resource: either would leave a booking outside the rules.
_CAPACITY_CHECK = f"""
CREATE FUNCTION holdfast_resource_capacity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.capacity <> OLD.capacity AND EXISTS (
        SELECT FROM allocations a
         WHERE a.resource_id = NEW.id AND a.{LIVE} AND upper(a.span) > now()
           AND (a.seat >= NEW.capacity OR (a.group_session IS NOT NULL AND NEW.capacity > 1))
    ) THEN
        RAISE EXCEPTION 'resources_capacity_in_use: live bookings hold seats of % past capacity %',
            NEW.id, NEW.capacity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'resources_capacity_in_use';
    END IF;
    RETURN NEW;
END $$;
"""


def upgrade() -> None:
    op.add_column(
        "resources", sa.Column("capacity", sa.Integer(), server_default="1", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_resources_capacity"), "resources", "capacity BETWEEN 1 AND 1000"
    )
    op.add_column(
        "services",
        sa.Column("seats_per_booking", sa.Integer(), server_default="1", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_services_seats_per_booking"), "services", "seats_per_booking BETWEEN 1 AND 1000"
    )
    op.add_column(
        "allocations", sa.Column("seat", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("allocations", sa.Column("group_session", sa.Uuid(), nullable=True))
    op.create_check_constraint(op.f("ck_allocations_seat"), "allocations", "seat >= 0")
    op.drop_constraint("ex_allocations_no_overlap", "allocations")
    op.execute(
        "ALTER TABLE allocations ADD CONSTRAINT ex_allocations_no_overlap EXCLUDE USING gist "
        "(resource_id WITH =, seat WITH =, span WITH &&, coalesce(group_session, id) WITH <>) "
        f"WHERE ({LIVE})"
    )
    op.execute(_SEAT_CHECK)
    op.execute(
        "CREATE TRIGGER holdfast_allocation_seat BEFORE INSERT OR UPDATE ON allocations "
        "FOR EACH ROW EXECUTE FUNCTION holdfast_allocation_seat()"
    )
    op.execute(_CAPACITY_CHECK)
    op.execute(
        "CREATE TRIGGER holdfast_resource_capacity BEFORE UPDATE OF capacity ON resources "
        "FOR EACH ROW EXECUTE FUNCTION holdfast_resource_capacity()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER holdfast_resource_capacity ON resources")
    op.execute("DROP FUNCTION holdfast_resource_capacity()")
    op.execute("DROP TRIGGER holdfast_allocation_seat ON allocations")
    op.execute("DROP FUNCTION holdfast_allocation_seat()")
    op.drop_constraint("ex_allocations_no_overlap", "allocations")
    op.create_exclude_constraint(
        "ex_allocations_no_overlap",
        "allocations",
        (sa.column("resource_id"), "="),
        (sa.column("span"), "&&"),
        where=sa.text(LIVE),
        using="gist",
    )
    op.drop_constraint(op.f("ck_allocations_seat"), "allocations")
    op.drop_column("allocations", "group_session")
    op.drop_column("allocations", "seat")
    op.drop_constraint(op.f("ck_services_seats_per_booking"), "services")
    op.drop_column("services", "seats_per_booking")
    op.drop_constraint(op.f("ck_resources_capacity"), "resources")
    op.drop_column("resources", "capacity")
