"""How a message writes times and money for its reader (notifications/locale.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from notifications.locale import speech
from tests.notifications.samples import DASH, START, flat


@pytest.mark.parametrize(
    ("minor", "currency", "written"),
    [
        (1250, "EUR", "12,50 €"),
        (1250, "JPY", "1.250 ¥"),
        (1250, "KWD", "1,250 KWD"),
        (99, "eur", "0,99 €"),
    ],
)
def test_money_uses_the_currencys_own_minor_unit(minor: int, currency: str, written: str) -> None:
    assert flat(speech("de-DE", "Europe/Berlin").money(minor, currency)) == written


def test_times_are_in_the_customers_zone_and_name_it() -> None:
    assert flat(speech("en-GB", "America/New_York").moment(START)) == (
        "Monday, 1 March 2027, 04:00 (America/New_York)"
    )


def test_a_booking_across_midnight_names_both_days() -> None:
    late = datetime(2027, 3, 1, 22, 30, tzinfo=UTC)
    span = flat(speech("de", "Europe/Berlin").span(late, late + timedelta(hours=1)))
    assert (
        span == f"Montag, 1. März 2027, 23:30 {DASH} Dienstag, 2. März 2027, 00:30 (Europe/Berlin)"
    )


def test_english_uses_the_twelve_hour_clock_and_german_the_twenty_four_hour_one() -> None:
    afternoon = datetime(2027, 3, 1, 13, 0, tzinfo=UTC)
    end = afternoon + timedelta(minutes=30)
    assert f"2:00 {DASH} 2:30 PM" in flat(speech("en", "Europe/Berlin").span(afternoon, end))
    assert f"14:00{DASH}14:30 Uhr" in flat(speech("de", "Europe/Berlin").span(afternoon, end))


def test_a_lead_time_is_exact_in_the_largest_whole_unit() -> None:
    voice = speech("de", "Europe/Berlin")
    assert [voice.lead(m) for m in (90, 120, 2880)] == [
        "in 90 Minuten",
        "in 2 Stunden",
        "in 2 Tagen",
    ]


def test_a_known_region_of_a_worded_language_keeps_its_formatting() -> None:
    voice = speech("es-MX", "America/Mexico_City")
    assert (voice.language, str(voice.locale)) == ("es", "es_MX")


@pytest.mark.parametrize(
    ("tag", "language", "locale"),
    [("de-XX", "de", "de"), ("pt-BR", "en", "en"), ("??", "en", "en"), ("de_AT", "de", "de_AT")],
)
def test_a_locale_falls_back_to_its_language_then_to_english(
    tag: str, language: str, locale: str
) -> None:
    voice = speech(tag, "UTC")
    assert (voice.language, str(voice.locale)) == (language, locale)


def test_an_unknown_time_zone_is_written_as_utc_and_says_so() -> None:
    assert flat(speech("en", "Mars/Olympus").moment(START)).endswith("9:00 AM (UTC)")


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        speech("en", "UTC").moment(datetime(2027, 3, 1, 9, 0))
