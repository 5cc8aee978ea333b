"""Text messages (notifications/sms.py): short, localised, in the customer's local time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from jinja2 import nodes

from contract import MESSAGE_KINDS as KINDS
from contract import SMS_KINDS
from notifications.locale import LANGUAGES, TEMPLATES
from notifications.sms import LIMIT, sms_text
from tests.notifications.samples import PAID, START, facts, flat


def test_a_german_confirmation_text_is_german_in_berlin_time() -> None:
    text = flat(sms_text(facts(locale="de-DE")))
    assert text == (
        "Riverside Physio: Ihr Termin Sports massage am Mo., 1. März, 10:00 (Europe/Berlin) "
        "ist bestätigt."
    )


def test_a_reschedule_text_names_the_old_and_the_new_time() -> None:
    text = flat(sms_text(facts(kind="rescheduled", previous_start=START - timedelta(days=1))))
    assert "from Sun, Feb 28, 10:00 AM to Mon, Mar 1, 10:00 AM (Europe/Berlin)" in text


def test_a_cancellation_text_names_the_refund() -> None:
    refunded = {**PAID, "refunded_amount": 2500}
    text = flat(sms_text(facts(kind="cancelled", locale="fr", payment=refunded)))
    assert "est annulé" in text and "remboursé 25,00 €" in text


def test_a_reminder_text_says_how_long_until_the_start() -> None:
    text = sms_text(facts(kind="reminder", locale="es", reminder_minutes=120))
    assert "empieza dentro de 2 horas" in text


@pytest.mark.parametrize("kind", SMS_KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_a_short_text_for_every_sms_kind(language: str, kind: str) -> None:
    assert TEMPLATES.loader is not None
    source, _, _ = TEMPLATES.loader.get_source(TEMPLATES, f"{language}/wording.txt")
    assert f"{kind}_sms" in {m.name for m in TEMPLATES.parse(source).find_all(nodes.Macro)}
    text = sms_text(facts(kind=kind, locale=language, previous_start=START - timedelta(days=1)))
    assert "Riverside Physio" in text and "Sports massage" in text and "\n" not in text
    assert len(text) <= LIMIT


def test_a_text_stays_within_320_characters_with_long_names() -> None:
    text = sms_text(
        facts(
            kind="rescheduled",
            locale="fr",
            tenant_name="Cabinet de kinésithérapie " * 10,
            service_name="Rééducation " * 30,
            previous_start=START - timedelta(days=1),
        )
    )
    assert len(text) <= 320
    assert "10:00 (Europe/Berlin)" in flat(text)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - set(SMS_KINDS)))
def test_a_kind_not_sent_by_text_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="not sent as a text message"):
        sms_text(facts(kind=kind))
