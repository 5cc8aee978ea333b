"""Customer emails (notifications/email.py): headers, wording per kind and language, the
calendar attachment, and byte-identical recomposition."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from jinja2 import nodes

from contract import MESSAGE_KINDS as KINDS
from notifications.email import compose_email, compose_operator_email
from notifications.facts import Sender
from notifications.locale import LANGUAGES, TEMPLATES
from tests.notifications.samples import (
    APOSTROPHE,
    DASH,
    PAID,
    SENDER,
    START,
    attachments,
    facts,
    flat,
    received,
    text_and_html,
)


def test_a_german_confirmation_shows_berlin_local_time_and_a_german_date() -> None:
    message = compose_email(facts(locale="de-DE"), SENDER)
    for body in text_and_html(message):
        assert "Montag, 1. März 2027" in flat(body)
        assert "10:00" in body and "09:00" not in body
        assert "Europe/Berlin" in body
    assert message["Content-Language"] == "de"
    assert received(message)["Subject"].startswith("Bestätigt: Sports massage, Mo., 1. März")


def test_a_rescheduled_message_shows_the_old_and_the_new_time() -> None:
    old = START - timedelta(days=2, hours=1)  # Saturday 09:00 in Berlin
    message = compose_email(
        facts(kind="rescheduled", previous_start=old, previous_end=old + timedelta(hours=1)),
        SENDER,
    )
    text, html = text_and_html(message)
    for body in (flat(text), flat(html)):
        assert f"from Saturday, February 27, 2027, 9:00 {DASH} 10:00 AM (Europe/Berlin)" in body
        assert f"to Monday, March 1, 2027, 10:00 {DASH} 10:45 AM (Europe/Berlin)" in body


def test_a_cancellation_shows_the_refund_in_the_customers_currency_format() -> None:
    refunded = {**PAID, "status": "refunded", "refunded_amount": 5000}
    message = compose_email(facts(kind="cancelled", locale="de-DE", payment=refunded), SENDER)
    text, html = text_and_html(message)
    assert "Wir haben Ihnen 50,00 € erstattet" in flat(text)
    assert "Wir haben Ihnen 50,00 € erstattet" in flat(html)


def test_a_cancellation_with_nothing_refunded_says_no_refund_is_due() -> None:
    text, _ = text_and_html(compose_email(facts(kind="cancelled", payment=PAID), SENDER))
    assert "No refund is due." in flat(text)
    assert "refunded" not in text


def test_a_cancellation_of_a_free_booking_says_nothing_about_money() -> None:
    text, _ = text_and_html(compose_email(facts(kind="cancelled"), SENDER))
    assert "refund" not in text.lower()


def test_a_held_card_booking_shows_the_hold_end_and_the_amount() -> None:
    held = facts(
        kind="held",
        hold_expires_at=datetime(2027, 2, 20, 8, 45, tzinfo=UTC),
        payment={**PAID, "status": "requires_payment_method", "captured_amount": 0},
    )
    text, html = text_and_html(compose_email(held, SENDER))
    for body in (flat(text), flat(html)):
        assert (
            "complete your card payment of €50.00 before "
            "Saturday, February 20, 2027, 9:45 AM (Europe/Berlin)"
        ) in body


def test_a_held_pay_at_venue_booking_says_to_pay_there_while_it_is_held() -> None:
    held = facts(
        kind="held",
        locale="fr",
        hold_expires_at=datetime(2027, 2, 20, 8, 45, tzinfo=UTC),
        payment={**PAID, "provider": "pay_at_venue", "captured_amount": 0},
    )
    text, _ = text_and_html(compose_email(held, SENDER))
    assert "Vous réglerez 50,00 € sur place" in flat(text)
    assert f"jusqu{APOSTROPHE}au samedi 20 février 2027, 09:45 (Europe/Berlin)" in flat(text)


def test_the_reminder_says_how_long_until_the_start() -> None:
    text, _ = text_and_html(compose_email(facts(kind="reminder", reminder_minutes=90), SENDER))
    assert "starts in 90 minutes" in flat(text)


def test_the_message_id_is_derived_from_the_notification_id() -> None:
    message = compose_email(facts(message_id="0b5e"), SENDER)
    assert received(message)["Message-ID"] == "<0b5e@holdfast>"


def test_the_date_is_when_the_notification_was_written() -> None:
    written = datetime(2027, 2, 20, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    message = received(compose_email(facts(written_at=written), SENDER))
    assert parsedate_to_datetime(message["Date"]) == written


def test_reply_to_is_present_only_when_the_sender_has_one() -> None:
    assert "Reply-To" not in compose_email(facts(), SENDER)
    with_reply = Sender(SENDER.address, reply_to="desk@riverside.example")
    assert received(compose_email(facts(), with_reply))["Reply-To"] == "desk@riverside.example"


def test_from_is_our_address_under_the_tenants_name_unless_the_sender_has_one() -> None:
    assert received(compose_email(facts(), SENDER))["From"].addresses[0].display_name == (
        "Riverside Physio"
    )
    named = Sender(SENDER.address, name="Praxis Müller, Berlin")
    sent_from = received(compose_email(facts(), named))["From"].addresses[0]
    assert (sent_from.display_name, sent_from.addr_spec) == (
        "Praxis Müller, Berlin",
        "bookings@holdfast.example",
    )


def test_the_recipient_is_the_customer_by_name() -> None:
    to = received(compose_email(facts(customer_name="Jürgen Groß"), SENDER))["To"]
    assert (to.addresses[0].display_name, to.addresses[0].addr_spec) == (
        "Jürgen Groß",
        "anna@example.org",
    )


def test_headers_name_the_booking_and_the_kind_and_mark_the_message_automatic() -> None:
    message = received(compose_email(facts(kind="no_show"), SENDER))
    assert message["X-Holdfast-Booking"] == "b7e1c1de-8d2a-4a0e-9d55-6a1f2e3c4b5d"
    assert message["X-Holdfast-Kind"] == "no_show"
    assert message["Auto-Submitted"] == "auto-generated"


def test_a_line_break_in_a_name_cannot_add_a_header() -> None:
    sneaky = facts(customer_name="Eve\r\nBcc: everyone@example.org")
    message = received(compose_email(sneaky, Sender(SENDER.address, name="X\nBcc: a@b.c")))
    assert "Bcc" not in message


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_has_a_subject_and_a_body_for_every_kind(language: str) -> None:
    assert TEMPLATES.loader is not None
    source, _, _ = TEMPLATES.loader.get_source(TEMPLATES, f"{language}/wording.txt")
    macros = {macro.name for macro in TEMPLATES.parse(source).find_all(nodes.Macro)}
    for kind in KINDS:
        assert {f"{kind}_subject", f"{kind}_body"} <= macros, kind


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_renders_every_kind_in_text_and_html(language: str, kind: str) -> None:
    hold = START - timedelta(minutes=30) if kind == "held" else None
    message = compose_email(
        facts(
            kind=kind,
            locale=language,
            payment={**PAID, "refunded_amount": 2500},
            hold_expires_at=hold,
            previous_start=START - timedelta(days=1),
            reminder_minutes=1440,
        ),
        SENDER,
    )
    subject = str(received(message)["Subject"])
    text, html = text_and_html(message)
    assert message["Content-Language"] == language
    assert "Sports massage" in subject
    for body in (text, html):
        assert "Sports massage" in body and "Riverside Physio" in body
        assert "Dr Ada" in body and "Room 1" in body
        assert "b7e1c1de-8d2a-4a0e-9d55-6a1f2e3c4b5d" in body
    assert html.startswith("<!DOCTYPE html>") and f'lang="{language}"' in html


def test_kinds_have_different_subjects_in_each_language() -> None:
    for language in LANGUAGES:
        subjects = {
            str(received(compose_email(facts(kind=kind, locale=language), SENDER))["Subject"])
            for kind in KINDS
        }
        assert len(subjects) == len(KINDS), language


@pytest.mark.parametrize("locale", ["xx-YY", "", "not a locale", "pt-BR", "tlh"])
def test_a_locale_without_wording_falls_back_to_english(locale: str) -> None:
    message = compose_email(facts(locale=locale), SENDER)
    text, _ = text_and_html(message)
    assert message["Content-Language"] == "en"
    assert "is confirmed" in text and "Monday, March 1, 2027" in flat(text)


def test_spanish_wording_keeps_the_mexican_formatting_of_es_mx() -> None:
    priced = {**PAID, "currency": "MXN", "amount": 45000, "captured_amount": 45000}
    message = compose_email(
        facts(locale="es-MX", timezone="America/Mexico_City", payment=priced), SENDER
    )
    text, _ = text_and_html(message)
    assert "está confirmada" in text
    assert f"lunes, 1 de marzo de 2027, 3:00{DASH}3:45 a.m. (America/Mexico_City)" in flat(text)
    assert "$450.00" in text


def test_the_html_escapes_the_customers_name() -> None:
    message = compose_email(facts(customer_name="<script>alert(1)</script>"), SENDER)
    text, html = text_and_html(message)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Hello <script>alert(1)</script>," in text


@pytest.mark.parametrize(
    ("kind", "method"),
    [("confirmed", "REQUEST"), ("rescheduled", "REQUEST"), ("cancelled", "CANCEL")],
)
def test_the_calendar_invitation_is_attached_with_its_method(kind: str, method: str) -> None:
    (invite,) = attachments(compose_email(facts(kind=kind), SENDER))
    assert invite.get_content_type() == "text/calendar"
    assert invite.get_param("method") == method and invite.get_param("charset") == "utf-8"
    assert invite.get_filename() == "invite.ics"
    payload = invite.get_payload(decode=True)
    assert isinstance(payload, bytes) and f"METHOD:{method}".encode() in payload


@pytest.mark.parametrize("kind", ["held", "reminder", "expired", "failed", "no_show"])
def test_kinds_that_do_not_change_the_calendar_attach_nothing(kind: str) -> None:
    assert attachments(compose_email(facts(kind=kind), SENDER)) == []


@pytest.mark.parametrize("kind", ["confirmed", "held"])
def test_two_composes_of_the_same_facts_are_byte_identical(kind: str) -> None:
    sender = Sender(SENDER.address, name="Praxis Müller", reply_to="desk@riverside.example")
    first = compose_email(facts(kind=kind, locale="de-DE"), sender).as_bytes()
    assert compose_email(facts(kind=kind, locale="de-DE"), sender).as_bytes() == first


def test_the_operator_notice_is_english_plain_text_with_the_same_headers() -> None:
    message = received(
        compose_operator_email(
            message_id="9c1d",
            written_at=datetime(2027, 2, 20, 8, 30, tzinfo=UTC),
            to="ops@riverside.example",
            sender=Sender(SENDER.address, reply_to="support@holdfast.example"),
            tenant_name="Riverside Physio",
            subject="Webhook endpoint disabled",
            body="Your webhook endpoint https://riverside.example/hook has been disabled.",
        )
    )
    assert message["Message-ID"] == "<9c1d@holdfast>"
    assert message["To"] == "ops@riverside.example"
    assert message["Reply-To"] == "support@holdfast.example"
    assert message["Subject"] == "Webhook endpoint disabled"
    assert message["Content-Language"] == "en"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert "https://riverside.example/hook has been disabled." in message.get_content()
