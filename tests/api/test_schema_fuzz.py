"""Schema fuzzing: schemathesis reads the API's own OpenAPI document (/openapi.json) and
sends every operation requests made from it, valid and invalid: the document's examples,
the edges of each rule (coverage), random ones (fuzzing), and chains that feed one
answer's ids into the next request (stateful). Once with a tenant's secret key, once with
the operator key. Every answer must be no server error (but a documented 503: this app
has no Temporal), and have a documented status code, content type and headers, and a
body the documented schema accepts (docs/api.md). What this holds to account is the
document: api/openapi.py, and each route's response model.

The app is one of its own, which schemathesis serves in-process on its own event loop
(the suite's `app` lives on pytest's): it shares the suite's database, with rate limits
no fuzzer reaches. Generation is seeded and derandomized and keeps no example database,
so a run repeats the last one.

The run is schemathesis's engine, as its CLI runs it: its pytest integration
(`schemathesis.pytest.from_fixture`) does not run under pytest 9.2."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi

from api.app import create_app
from settings import Settings
from tests.support.clients import ADMIN_KEY

# Examples per operation and phase: with both keys the whole run takes about a minute
# on two cores.
MAX_EXAMPLES = 20
SEED = 20_250_601
# Operations not fuzzed, and why.
SKIPPED = {
    ("POST", "/v1/webhook-endpoints"): "checks the URL's host in DNS (the SSRF guard): "
    "fuzzed URLs would send queries out of the machine",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "checks the URL's host in DNS, as above",
    ("GET", "/v1/availability/stream"): "an opened stream never ends; its answers are "
    "tested in tests/e2e/test_live_availability.py",
}
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def _config(bearer: str) -> schemathesis.Config:
    checks: dict[str, object] = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    # A 503 is an answer where it is documented, which status_code_conformance checks.
    checks["not_a_server_error"] = {
        "enabled": True,
        "expected-statuses": ["2xx", "3xx", "4xx", "503"],
    }
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "workers": 1,
            "headers": {"Authorization": bearer},
            # A route that hangs fails at once, rather than the run at its timeout. No
            # per-example deadline: on a busy CI machine one fails runs for nothing.
            "request-timeout": 10,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": checks,
        }
    )


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    unlimited = {"rate_limit_per_minute": 1_000_000, "publishable_rate_limit_per_minute": 1_000_000}
    yield create_app(settings.model_copy(update=unlimited))
    asgi.shutdown_lifespans()  # the lifespan schemathesis started: the engine, the pool


def _problems(schema: schemathesis.BaseSchema) -> list[str]:
    """Every failed check (once per operation, check and kind) and every error."""
    found: dict[tuple[str, str, str], str] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for results in event.recorder.checks.values():
                for check in results:
                    info = check.failure_info
                    if info is None:
                        continue
                    key = (event.label or "stateful", check.name, info.failure.title)
                    found.setdefault(key, f"{info.failure.message}\n{info.code_sample}")
        elif isinstance(event, events.NonFatalError):
            found.setdefault((event.label, "error", type(event.value).__name__), str(event.value))
        elif isinstance(event, events.FatalError):
            found.setdefault(("engine", "fatal", type(event.exception).__name__), "")
    return [f"{label}: {check}: {title}\n{text}" for (label, check, title), text in found.items()]


@pytest.mark.parametrize("who", ["tenant", "operator"])
def test_every_answer_is_as_documented(who: str, fuzz_app: FastAPI, api: httpx.AsyncClient) -> None:
    bearer = f"Bearer {ADMIN_KEY}" if who == "operator" else api.headers["Authorization"]
    schema: schemathesis.BaseSchema = schemathesis.openapi.from_asgi(
        "/openapi.json", fuzz_app, config=_config(bearer)
    )
    for method, path in SKIPPED:
        schema = schema.exclude(method=method, path=path)
    problems = _problems(schema)
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)
