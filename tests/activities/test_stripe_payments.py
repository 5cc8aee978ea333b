"""Answers from Stripe that localstripe never gives, served by a one-route stand-in: the
real `stripe` client reads them, and our provider turns them into lasting failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from temporalio.exceptions import ApplicationError

from activities.stripe_payments import StripePayments
from contract import Payment
from tests.support.stripe import stripe_client

FAILED_REFUND = {
    "id": "re_1",
    "object": "refund",
    "status": "failed",
    "failure_reason": "expired_or_canceled_card",
}


class _RefundFails(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = json.dumps(FAILED_REFUND).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stripe_base() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RefundFails)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refund_stripe_reports_failed_is_a_lasting_failure(stripe_base: str) -> None:
    paid = Payment("stripe", "succeeded", 8000, "EUR", intent_id="pi_1", captured_amount=8000)
    with pytest.raises(ApplicationError) as refused:
        StripePayments(stripe_client(stripe_base)).refund("b-1", paid, 8000, 1)
    assert refused.value.type == "RefundFailed" and refused.value.non_retryable
    assert "expired_or_canceled_card" in str(refused.value)
