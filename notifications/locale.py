"""The customer's language: which words a message uses and how it writes times and money.

The words are `templates/<language>/wording.txt`, one per language in LANGUAGES: a subject,
a body and (for SMS kinds) a text message per kind, plus the few phrases every email
shares. The layouts in `templates/layout/` put them around the booking's details, so each
language's wording lives in exactly one file and no layout is repeated per language.

Times and amounts are written by Babel with the customer's full locale, in the customer's
time zone, so "es-MX" reads Spanish words with Mexican dates ("10:00 a.m.") and "de-AT"
German words with Austrian ones. A locale whose language has no wording ("pt-BR") gets
English words and English formatting, so one message never mixes two languages; an
unknown or invalid tag, and a tag Babel knows only by its language ("de-XX" -> "de"), fall
back the same way. An unknown time zone is written as UTC, and says so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import (
    format_date,
    format_interval,
    format_skeleton,
    format_time,
    format_timedelta,
    get_datetime_format,
)
from babel.lists import format_list
from babel.numbers import format_currency, get_currency_precision

from contract import MESSAGE_KINDS, SMS_KINDS
from notifications.facts import MessageFacts

LANGUAGES = ("en", "de", "fr", "es")
FALLBACK = "en"

TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("notifications", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Speech:
    """How one customer reads times and money: a Babel locale and a time zone."""

    language: str  # the wording's language, one of LANGUAGES
    locale: Locale  # what Babel formats with; its language is always `language`
    zone: tzinfo
    zone_name: str  # shown next to every full time, so a traveller knows which clock

    def moment(self, at: datetime) -> str:
        """An instant in full, with its zone: "Montag, 1. März 2027, 10:00 (Europe/Berlin)"."""
        local = self._local(at)
        return f"{self._glue('full', self._day(local), self._time(local))} ({self.zone_name})"

    def span(self, start: datetime, end: datetime) -> str:
        """A booking's time, naming its day once when it starts and ends on the same day."""
        first, last = self._local(start), self._local(end)
        if first.date() != last.date():
            ends = [self._glue("full", self._day(t), self._time(t)) for t in (first, last)]
            fallback = str(self.locale.interval_formats.get(None) or "{0} - {1}")
            both = fallback.replace("{0}", ends[0]).replace("{1}", ends[1])
            return f"{both} ({self.zone_name})"
        skeleton = "hm" if self._twelve_hour() else "Hm"
        times = format_interval(first.time(), last.time(), skeleton, locale=self.locale)
        return f"{self._glue('full', self._day(first), times)} ({self.zone_name})"

    def short(self, at: datetime) -> str:
        """For a subject line or a text message, without the zone: "Mo., 1. März, 10:00"."""
        local = self._local(at)
        day = format_skeleton("MMMEd", local, locale=self.locale)
        return self._glue("medium", day, self._time(local))

    def money(self, minor: int, currency: str) -> str:
        """Minor units to the currency's own precision: 1250 EUR is "12,50 €", 1250 JPY
        is "¥1,250"."""
        code = currency.upper()
        amount = Decimal(minor).scaleb(-get_currency_precision(code))
        return format_currency(amount, code, locale=self.locale)

    def lead(self, minutes: int) -> str:
        """How far ahead, exactly ("in 90 minutes", "in 2 Tagen"): the largest whole unit,
        where Babel on its own would round 90 minutes to 2 hours."""
        minutes = max(0, minutes)
        unit: Literal["day", "hour", "minute"] = "minute"
        if minutes and minutes % (24 * 60) == 0:
            unit = "day"
        elif minutes and minutes % 60 == 0:
            unit = "hour"
        return format_timedelta(
            timedelta(minutes=minutes),
            granularity=unit,
            threshold=float("inf"),
            add_direction=True,
            locale=self.locale,
        )

    def names(self, items: list[str]) -> str:
        """ "Dr Ada und Room 1"."""
        return format_list([_line(item) for item in items], locale=self.locale) if items else ""

    def _local(self, at: datetime) -> datetime:
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"a naive time ({at.isoformat()}) cannot be shown in a zone")
        return at.astimezone(self.zone)

    def _day(self, local: datetime) -> str:
        return format_date(local.date(), "full", locale=self.locale)

    def _time(self, local: datetime) -> str:
        return format_time(local.time(), "short", locale=self.locale)

    def _glue(self, width: Literal["full", "medium"], day: str, time: str) -> str:
        pattern = str(get_datetime_format(width, locale=self.locale))
        return pattern.replace("'", "").replace("{1}", day).replace("{0}", time)

    def _twelve_hour(self) -> bool:
        pattern = str(self.locale.time_formats["short"].pattern)
        return "h" in pattern or "K" in pattern


def speech(locale: str, timezone: str) -> Speech:
    """Never fails: a message in English and UTC is better than none."""
    parsed = _parse(locale)
    if parsed is None or parsed.language not in LANGUAGES:
        parsed = Locale.parse(FALLBACK)
    zone: tzinfo
    try:
        zone, zone_name = ZoneInfo(timezone), timezone
    except (ZoneInfoNotFoundError, ValueError):
        zone, zone_name = UTC, "UTC"
    return Speech(language=str(parsed.language), locale=parsed, zone=zone, zone_name=zone_name)


def _parse(tag: str) -> Locale | None:
    """The full tag if Babel knows it, else its language alone, else None."""
    tag = tag.strip().replace("_", "-")
    for candidate in (tag, tag.split("-", 1)[0]):
        try:
            return Locale.parse(candidate, sep="-")
        except (ValueError, TypeError, UnknownLocaleError):
            continue
    return None


@dataclass(frozen=True)
class Wording:
    """One message's words in the customer's language, ready for a layout. Every string is
    plain text on one line (paragraphs are separate), so the HTML layout escapes them."""

    language: str
    subject: str
    greeting: str
    paragraphs: tuple[str, ...]
    details: tuple[tuple[str, str], ...]  # (label, value): service, time, resources, booking
    sign_off: str
    footer: str
    labels: Mapping[str, str]
    sms: str | None  # for a kind in SMS_KINDS


def wording(facts: MessageFacts) -> Wording:
    """Raises ValueError for an unknown kind or a naive time, rather than guess and tell a
    customer the wrong thing."""
    if facts.kind not in MESSAGE_KINDS:
        raise ValueError(f"no wording for the message kind {facts.kind!r}")
    for name in ("written_at", "start", "end", "previous_start", "previous_end", "hold_expires_at"):
        at = getattr(facts, name)
        if at is not None and (at.tzinfo is None or at.utcoffset() is None):
            raise ValueError(f"{name} is naive ({at.isoformat()}): times must be aware")
    voice = speech(facts.locale, facts.timezone)
    context = _context(facts, voice)
    template = TEMPLATES.get_template(f"{voice.language}/wording.txt")
    words: dict[str, Any] = vars(template.make_module(context))
    labels = {str(key): _line(str(value)) for key, value in words["labels"].items()}
    details = [(labels["service"], context["service_name"]), (labels["when"], context["when"])]
    if facts.resources:
        details.append((labels["with"], voice.names(facts.resources)))
    details.append((labels["reference"], facts.booking_id))
    kind = facts.kind
    return Wording(
        language=voice.language,
        subject=_line(str(words[f"{kind}_subject"]())),
        greeting=_line(str(words["greeting"])),
        paragraphs=_paragraphs(str(words[f"{kind}_body"]())),
        details=tuple(details),
        sign_off=_line(str(words["sign_off"])),
        footer=_line(str(words["footer"])),
        labels=labels,
        sms=_line(str(words[f"{kind}_sms"]())) if kind in SMS_KINDS else None,
    )


def _context(facts: MessageFacts, voice: Speech) -> dict[str, Any]:
    """What the wording templates may say: each value already written for this customer,
    or None where the fact is absent (the templates leave the sentence out)."""
    payment = facts.payment or {}
    currency = str(payment.get("currency") or "")

    def money(key: str) -> str | None:
        minor = int(payment.get(key) or 0)
        return voice.money(minor, currency) if minor > 0 and currency else None

    previous = None
    if facts.previous_start is not None:
        previous_end = facts.previous_end or facts.previous_start + (facts.end - facts.start)
        previous = voice.span(facts.previous_start, previous_end)
    lead = facts.reminder_minutes
    if lead is None:  # a reminder written late still says how long is left
        lead = round((facts.start - facts.written_at).total_seconds() / 60)
    hold = facts.hold_expires_at
    return {
        "customer_name": _line(facts.customer_name),
        "tenant_name": _line(facts.tenant_name),
        "service_name": _line(facts.service_name),
        "booking_id": facts.booking_id,
        "when": voice.span(facts.start, facts.end),
        "start_short": voice.short(facts.start),
        "zone": voice.zone_name,
        "previous_when": previous,
        "previous_short": voice.short(facts.previous_start) if facts.previous_start else None,
        "hold_until": voice.moment(hold) if hold is not None else None,
        "lead": voice.lead(lead),
        "provider": payment.get("provider"),
        "amount": money("amount"),  # None: free
        "captured": money("captured_amount"),
        "refunded": money("refunded_amount"),
    }


def _line(text: str) -> str:
    """One line: a name with a line break in it must not break a header or a sentence."""
    return " ".join(text.split())


def _paragraphs(text: str) -> tuple[str, ...]:
    return tuple(p for p in (_line(chunk) for chunk in re.split(r"\n\s*\n", text)) if p)
