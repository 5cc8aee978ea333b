"""Which seats a booking takes on each resource (docs/capacity.md), chosen in the statement
that inserts its allocations.

A resource of capacity 1 gives its one seat: to the booking alone, or, in a group session
(a booking taking a seat of a resource of capacity > 1), shared with the session's other
attendees, marked by the session's id. A resource of capacity `c` gives the booking the
lowest `seats_per_booking` of its `c` seats free over the span.

The statement reads which seats are free from its snapshot, so two claims racing for the
last seat may both choose it: the exclusion constraint lets one in and refuses the other,
which tries again (db/bookings.py). The database, not this choice, is what refuses a
claim beyond capacity.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from db.models import LIVE_ALLOCATIONS_SQL

_GROUP_SESSIONS = uuid.UUID("6f1c2c1e-6d3f-4b8e-9a57-0c9a8f1f3b21")


def group_session_id(
    service_id: str | uuid.UUID, start: datetime | int, end: datetime | int
) -> uuid.UUID:
    """The group session of a service over a buffer-widened span: the same for every
    attendee, computed alike by the claim and by availability."""
    lo = int(start.timestamp()) if isinstance(start, datetime) else start
    hi = int(end.timestamp()) if isinstance(end, datetime) else end
    return uuid.uuid5(_GROUP_SESSIONS, f"{service_id}/{lo}/{hi}")


# After a CTE `locked (id, capacity)` of the booking's resources, locked FOR SHARE: the
# seats wanted of each (`wanted`), and the resources that cannot give enough (`short`).
# Parameters: :span, :seats (seats_per_booking), :group_session.
SEATS = f"""
    grouped AS (
        SELECT coalesce(bool_or(capacity > 1), false) AS is_group FROM locked
    ), wanted AS (
        SELECT locked.id AS resource_id, free.seat,
               CASE WHEN locked.capacity = 1 AND grouped.is_group
                    THEN CAST(:group_session AS uuid) END AS group_session
          FROM locked CROSS JOIN grouped CROSS JOIN LATERAL (
               SELECT candidate.seat
                 FROM generate_series(0, locked.capacity - 1) AS candidate (seat)
                WHERE NOT EXISTS (
                      SELECT FROM allocations taken
                       WHERE taken.resource_id = locked.id AND taken.seat = candidate.seat
                         AND taken.span && CAST(:span AS tstzrange)
                         AND taken.status IN {LIVE_ALLOCATIONS_SQL}
                         AND (locked.capacity > 1 OR NOT grouped.is_group
                              OR taken.group_session IS DISTINCT FROM :group_session))
                ORDER BY candidate.seat
                LIMIT CASE WHEN locked.capacity = 1 THEN 1 ELSE CAST(:seats AS integer) END
          ) AS free
    ), short AS (
        SELECT FROM locked
         WHERE (SELECT count(*) FROM wanted WHERE wanted.resource_id = locked.id)
               < CASE WHEN locked.capacity = 1 THEN 1 ELSE CAST(:seats AS integer) END
    )"""
