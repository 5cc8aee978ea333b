"""Validated field types shared by request models."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

from scheduling.hours import WEEKDAYS, HoursError, parse_day


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(name: str) -> str:
    if name not in _zones():
        raise ValueError(f"{name!r} is not an IANA timezone name (e.g. 'Europe/Berlin')")
    return name


def _check_day(blocks: list[list[str]]) -> list[list[str]]:
    try:
        parse_day(blocks)
    except HoursError as exc:
        raise ValueError(str(exc)) from exc
    return blocks


def _check_weekly(week: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(week) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown weekday {unknown[0]!r}; use {', '.join(WEEKDAYS)}")
    return week


def _plausible(value: datetime) -> datetime:
    """Keep instants where the calendar arithmetic is defined (no year 1 or 9999)."""
    if not 2000 <= value.year <= 2200:
        raise ValueError("times must lie between the years 2000 and 2200")
    return value


def _lowercase_keys(value: Any) -> Any:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else value


def _unique_sorted(values: list[str]) -> list[str]:
    return sorted(set(values))


TimeZoneName = Annotated[str, AfterValidator(_check_timezone), Field(examples=["Europe/Berlin"])]
Tag = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Tags = Annotated[list[Tag], Field(max_length=50), AfterValidator(_unique_sorted)]
DayHoursJson = Annotated[
    list[Annotated[list[str], Field(min_length=2, max_length=2)]],
    Field(max_length=24, examples=[[["09:00", "12:00"], ["13:00", "17:00"]]]),
    AfterValidator(_check_day),
]
WeeklyHoursJson = Annotated[
    dict[str, DayHoursJson],
    BeforeValidator(_lowercase_keys),
    AfterValidator(_check_weekly),
    Field(examples=[{"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}]),
]
Name = Annotated[str, Field(min_length=1, max_length=200)]
# RFC 3339 with an offset (a naive time is a 422), within a plausible range.
Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]
