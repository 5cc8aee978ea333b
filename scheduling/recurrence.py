"""The starts of a booking series (docs/series.md): an RFC 5545 recurrence rule read with
`dateutil.rrule`, applied to the first start's wall-clock time in the service's zone.

The rule runs over local times, then each is placed in the zone: a weekly 09:00 stays
09:00 across a DST change (its UTC instant moves by an hour). A local time the change
skips (02:30 on the spring-forward night) does not exist; it is kept, as the instant
the zone gives it, and availability then finds no slot there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rrulestr

MAX_OCCURRENCES = 52


class RuleError(ValueError):
    """The rule cannot be read, or would make too many occurrences (or never end)."""


def occurrences(rule: str, first: datetime, timezone: str) -> list[datetime]:
    """The series' starts (UTC), `first` the first of them: the rule's COUNT or UNTIL
    bounds it, to at most MAX_OCCURRENCES."""
    text = rule.strip().removeprefix("RRULE:")
    if not text or "\n" in text or "DTSTART" in text.upper():
        raise RuleError("rrule must be one RRULE line, without DTSTART (start is the first)")
    zone = ZoneInfo(timezone)
    local = first.astimezone(zone)
    # An UNTIL in UTC (…Z, as RFC 5545 asks beside a zoned start) needs an aware start; a
    # floating UNTIL is the zone's wall-clock time, beside a floating start. Either way
    # the rule steps over wall-clock times.
    parts = _parts(text)
    if "COUNT" not in parts and "UNTIL" not in parts:
        raise RuleError("rrule must end: give COUNT or UNTIL")
    if not parts.get("UNTIL", "").endswith("Z"):
        local = local.replace(tzinfo=None)
    try:
        parsed = rrulestr(text, dtstart=local)
    except (ValueError, TypeError) as err:
        raise RuleError(f"rrule is not a valid RFC 5545 rule: {err}") from err
    if not isinstance(parsed, rrule):
        raise RuleError("rrule must be a single rule")
    starts: list[datetime] = []
    for at in parsed:
        if len(starts) == MAX_OCCURRENCES:
            raise RuleError(f"a series has at most {MAX_OCCURRENCES} occurrences")
        starts.append(at.replace(tzinfo=zone).astimezone(UTC))  # wall clock, in the zone
    if not starts:
        raise RuleError("rrule gives no occurrence")
    return starts


def _parts(text: str) -> dict[str, str]:
    """The rule's NAME=value parts (what dateutil reads them into it keeps private)."""
    return {name: value for name, _, value in (p.partition("=") for p in text.upper().split(";"))}
