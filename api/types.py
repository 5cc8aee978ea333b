"""Validated field types shared by request models."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any

import babel
import phonenumbers
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict

from api.currencies import CURRENCIES
from scheduling.hours import WEEKDAYS, HoursError, parse_day

# JSON integers and booleans only. FastAPI validates bodies in pydantic's python mode,
# whose lax rules read "45" and true as integers and "true" as a boolean. Fields are made
# strict one by one: a strict model would refuse datetimes and UUIDs sent as strings.
JsonInt = Annotated[int, Strict()]
JsonBool = Annotated[bool, Strict()]

_AREAS = (
    "Africa/",
    "America/",
    "Antarctica/",
    "Arctic/",
    "Asia/",
    "Atlantic/",
    "Australia/",
    "Europe/",
    "Indian/",
    "Pacific/",
)


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    """The zones of the geographic areas, and UTC: not files such as `localtime` or
    `Factory`, POSIX-style rules such as `EST5EDT`, nor legacy aliases such as
    `US/Eastern`."""
    return frozenset(
        z for z in zoneinfo.available_timezones() if z == "UTC" or z.startswith(_AREAS)
    )


def _check_timezone(name: str) -> str:
    if name not in _zones():
        raise ValueError(
            f"{name!r} is not a canonical IANA time zone name (e.g. 'Europe/Berlin' or 'UTC')"
        )
    return name


def _check_currency(code: str) -> str:
    code = code.upper()
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code in use (e.g. 'EUR')")
    return code


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


_EARLIEST_OFFSET, _LATEST_OFFSET = timedelta(hours=-12), timedelta(hours=14)


def _real_offset(value: datetime) -> datetime:
    """Offsets that exist on Earth, in whole minutes; PostgreSQL refuses some others."""
    offset = value.utcoffset()
    if offset is None or not _EARLIEST_OFFSET <= offset <= _LATEST_OFFSET:
        raise ValueError("the UTC offset must lie between -12:00 and +14:00")
    if offset % timedelta(minutes=1):
        raise ValueError("the UTC offset must be a whole number of minutes")
    return value


def _plausible(value: datetime) -> datetime:
    """Keep instants where the calendar arithmetic is defined (no year 1 or 9999)."""
    if not 2000 <= value.year <= 2200:
        raise ValueError("times must lie between the years 2000 and 2200")
    return value


def _lowercase_keys(value: Any) -> Any:
    """Weekdays in any case; one given twice (`MON` and `mon`) is refused, not dropped."""
    if not isinstance(value, dict):
        return value
    week: dict[str, Any] = {}
    for key, hours in value.items():
        day = str(key).lower()
        if day in week:
            raise ValueError(f"weekday {day!r} is given more than once")
        week[day] = hours
    return week


def _unique_sorted(values: list[str]) -> list[str]:
    return sorted(set(values))


TimeZoneName = Annotated[str, AfterValidator(_check_timezone), Field(examples=["Europe/Berlin"])]


def _e164(value: str) -> str:
    """In international form (a leading `+`), a number that can exist; stored in E.164,
    as SMS providers take it."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise ValueError(f"{value!r} is not a phone number in international form (+4930123456)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _locale(value: str) -> str:
    try:
        babel.Locale.parse(value, sep="-")
    except (ValueError, babel.UnknownLocaleError):
        raise ValueError(f"{value!r} is not a BCP 47 language tag we know (e.g. 'de-DE')") from None
    return value


# Written with spaces, dots or dashes, stored as E.164 (`+4930123456`).
PhoneNumber = Annotated[
    str,
    Field(min_length=3, max_length=32, examples=["+49 30 123456"]),
    AfterValidator(_e164),
]
# A BCP 47 tag Babel knows (`de`, `de-DE`, `es-MX`); kept as sent.
LanguageTag = Annotated[
    str,
    Field(min_length=2, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"),
    AfterValidator(_locale),
]
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
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:\d{2})$"
)


def _rfc3339(value: Any) -> Any:
    """Only the text of a date-time with its offset: pydantic alone would also take a
    Unix timestamp (as UTC), and cut nanoseconds off without a word."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError(
            "must be an RFC 3339 date-time with an offset, e.g. 2026-12-07T09:00:00+01:00"
        )
    return value


# RFC 3339 with an offset (a naive time is a 422), within a plausible range.
Instant = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339),
    AfterValidator(_real_offset),
    AfterValidator(_plausible),
]
# Any case in, upper case stored.
Currency = Annotated[
    str, Field(pattern=r"^[A-Za-z]{3}$", examples=["EUR"]), AfterValidator(_check_currency)
]
