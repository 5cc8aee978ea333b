"""Which seats a booking takes on each resource (docs/capacity.md), chosen in the statement
that inserts its allocations.

A resource of capacity 1 gives its one seat: to the booking alone, or, in a group session
(a booking taking a seat of a resource of capacity > 1), shared with the session's other
attendees, marked by the session's id (its service, span and resources). A resource of
capacity `c` gives the booking `seats_per_booking` of its `c` seats free over the span.

The statement reads which seats are free from its snapshot, starting its search at a
seat of its own (`seat_offset`), so two claims racing rarely choose the same seat; two
racing for the last seat both choose it: the exclusion constraint lets one in and refuses the other,
which tries again (db/bookings.py). The database, not this choice, is what refuses a
claim beyond capacity.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from db.models import LIVE_ALLOCATIONS_SQL
from scheduling.seats import group_session_id


def session_of(
    service_id: object, widened: tuple[datetime, datetime], resource_ids: list[str]
) -> uuid.UUID:
    """The group session a booking with these resources over this span would join (or
    start): see scheduling/seats.py."""
    lo, hi = (int(t.timestamp()) for t in widened)
    return uuid.UUID(group_session_id(str(service_id), lo, hi, resource_ids))


# After a CTE `locked (id, capacity)` of the booking's resources, locked FOR SHARE: the
# seats wanted of each (`wanted`), and the resources that cannot give enough (`short`).
# Parameters: :span, :seats (seats_per_booking), :group_session, :seat_offset (where
# this booking starts looking: racers for one class spread over its free seats instead of
# all choosing the lowest, so few collide).
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
                ORDER BY (candidate.seat + CAST(:seat_offset AS integer)) % locked.capacity
                LIMIT CASE WHEN locked.capacity = 1 THEN 1 ELSE CAST(:seats AS integer) END
          ) AS free
    ), short AS (
        SELECT FROM locked
         WHERE (SELECT count(*) FROM wanted WHERE wanted.resource_id = locked.id)
               < CASE WHEN locked.capacity = 1 THEN 1 ELSE CAST(:seats AS integer) END
    )"""


def seat_offset(booking_id: uuid.UUID) -> int:
    """Where a booking starts looking for free seats: its own, spread by its id."""
    return booking_id.int % 1000
