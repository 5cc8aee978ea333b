"""Standard Webhooks signatures (notifications/webhooks.py, docs/webhooks.md#verifying),
checked with the reference library a receiver would use."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from notifications.webhooks import new_secret, signed_headers

BODY = json.dumps({"type": "booking.confirmed", "data": {"booking": {"version": 2}}}).encode()


def test_new_secret_is_32_random_bytes_in_base64() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32


def test_receiver_verifies_the_signed_request() -> None:
    secret = new_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), BODY)
    assert headers["webhook-id"] == "msg_1"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_timestamp_is_unix_seconds_whatever_the_zone() -> None:
    at = datetime(2026, 3, 1, 12, 0, 30, 900_000, tzinfo=timezone(timedelta(hours=2)))
    headers = signed_headers([new_secret()], "msg_1", at, BODY)
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))


def test_forged_body_fails() -> None:
    secret = new_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"2", b"3"), headers)


def test_another_message_id_fails() -> None:
    secret = new_secret()
    headers = signed_headers([secret], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, {**headers, "webhook-id": "msg_2"})


def test_stale_timestamp_fails() -> None:
    secret = new_secret()
    stale = datetime.now(UTC) - timedelta(minutes=5, seconds=5)
    headers = signed_headers([secret], "msg_1", stale, BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, headers)


def test_during_rotation_either_secret_verifies() -> None:
    current, previous = new_secret(), new_secret()
    headers = signed_headers([current, previous], "msg_1", datetime.now(UTC), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(previous).verify(BODY, headers)  # a receiver not yet rolled over
    Webhook(current).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_signing_needs_a_secret_and_an_aware_time() -> None:
    with pytest.raises(ValueError):
        signed_headers([], "msg_1", datetime.now(UTC), BODY)
    with pytest.raises(ValueError):
        signed_headers([new_secret()], "msg_1", datetime.now(), BODY)
