"""Signatures of outgoing webhooks, in the Standard Webhooks scheme
(https://www.standardwebhooks.com/; docs/webhooks.md#verifying): the signed content is
`{webhook-id}.{webhook-timestamp}.{body}`, HMAC-SHA256 keyed with the base64-decoded
secret after `whsec_`."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from secrets import token_bytes

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh endpoint secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(token_bytes(32)).decode("ascii")


def signed_headers(
    secrets: Sequence[str], message_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The headers of one request: `webhook-signature` holds one `v1,<signature>` per
    secret, space-separated, so during a rotation a receiver that knows either the new or
    the previous secret verifies it. A retry must pass the same `message_id`."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    if timestamp.tzinfo is None:
        raise ValueError("the timestamp must be timezone-aware")
    # The library reads the timestamp's wall clock as UTC: hand it UTC.
    at = timestamp.astimezone(UTC)
    text = body.decode("utf-8")
    signatures = " ".join(Webhook(s).sign(message_id, at, text) for s in secrets)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }
