"""Text messages: one short sentence per kind in SMS_KINDS, in the customer's language and
local time (the wording is `<kind>_sms` in templates/<language>/wording.txt)."""

from __future__ import annotations

from dataclasses import replace

from contract import SMS_KINDS
from notifications.facts import MessageFacts
from notifications.locale import wording

LIMIT = 320  # two concatenated SMS segments; longer messages cost more and arrive split
_NAME_LIMIT = 40


def sms_text(facts: MessageFacts) -> str:
    """At most LIMIT characters: overlong tenant or service names are shortened first, so
    the time still fits. Raises ValueError for a kind outside SMS_KINDS, which is never
    sent as a text message."""
    if facts.kind not in SMS_KINDS:
        raise ValueError(f"a {facts.kind!r} message is not sent as a text message")
    text = _text(facts)
    if len(text) > LIMIT:
        text = _text(
            replace(
                facts,
                tenant_name=_shortened(facts.tenant_name),
                service_name=_shortened(facts.service_name),
            )
        )
    return text if len(text) <= LIMIT else text[: LIMIT - 1] + "…"


def _text(facts: MessageFacts) -> str:
    text = wording(facts).sms
    assert text is not None  # every SMS kind has one; tests/notifications check it
    return text


def _shortened(name: str) -> str:
    name = " ".join(name.split())
    return name if len(name) <= _NAME_LIMIT else name[: _NAME_LIMIT - 1].rstrip() + "…"
