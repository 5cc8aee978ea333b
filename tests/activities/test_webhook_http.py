"""One webhook attempt over real HTTP (activities/webhook_http.py): a local aiohttp
receiver on 127.0.0.1, reached with private targets allowed; the address pinning and
TLS name are checked with httpx.MockTransport, which needs no network."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import activities.webhook_http as webhook_http
from activities.webhook_http import Answer, post_webhook, webhook_client

BODY = b'{"type":"booking.confirmed","timestamp":"2026-03-01T12:00:00Z","data":{}}'
HEADERS = {"webhook-id": "msg_1", "content-type": "application/json"}


@dataclass
class Receiver:
    base: str
    seen: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    sock = free_socket()
    found = Receiver(f"http://127.0.0.1:{sock.getsockname()[1]}")

    async def handle(request: web.Request) -> web.StreamResponse:
        found.seen.append((request.path, dict(request.headers), await request.read()))
        if request.path == "/slow":
            await found.release.wait()
        if request.path == "/fail":
            return web.Response(status=500, text="boom")
        if request.path == "/moved":
            raise web.HTTPFound("http://127.0.0.1:1/elsewhere")
        if request.path == "/big":
            return web.Response(body=b"x" * (1024 * 1024))
        return web.Response(status=200, text="thanks")

    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    try:
        yield found
    finally:
        found.release.set()
        await runner.cleanup()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with webhook_client() as c:
        yield c


async def post(client: httpx.AsyncClient, url: str, seconds: float = 5.0) -> Answer:
    return await post_webhook(client, url, BODY, HEADERS, allow_private=True, timeout=seconds)


async def test_2xx_is_ok_and_the_receiver_gets_body_and_headers(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await post(client, f"{receiver.base}/hooks?x=1")
    assert answer.ok and answer.status_code == 200 and answer.error is None
    assert answer.latency_ms >= 0
    [(path, headers, body)] = receiver.seen
    assert path == "/hooks" and body == BODY
    assert headers["Host"] == receiver.base.removeprefix("http://")
    assert headers["webhook-id"] == "msg_1"
    assert headers["Content-Type"] == "application/json"


async def test_500_is_a_failure_with_its_status(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await post(client, f"{receiver.base}/fail")
    assert answer == Answer(500, answer.latency_ms, None) and not answer.ok


async def test_a_redirect_is_not_followed(client: httpx.AsyncClient, receiver: Receiver) -> None:
    answer = await post(client, f"{receiver.base}/moved")
    assert answer.status_code == 302 and answer.error == "redirect not followed"
    assert not answer.ok and len(receiver.seen) == 1


async def test_a_large_answer_is_read_only_in_part(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    assert (await post(client, f"{receiver.base}/big")).ok


async def test_connection_refused_is_reported_quickly(client: httpx.AsyncClient) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    started = time.monotonic()
    answer = await post(client, f"http://127.0.0.1:{port}/hook")
    assert time.monotonic() - started < 2
    assert answer == Answer(None, answer.latency_ms, "connection failed: connection refused")


async def test_loopback_is_refused_without_a_request(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    answer = await post_webhook(
        client, f"{receiver.base}/hook", BODY, HEADERS, allow_private=False, timeout=5
    )
    assert answer.status_code is None and answer.latency_ms == 0
    assert answer.error and answer.error.startswith("refused: 127.0.0.1 is not a public address")
    assert receiver.seen == []


async def test_a_bad_url_is_refused(client: httpx.AsyncClient) -> None:
    answer = await post(client, "ftp://127.0.0.1/hook")
    assert answer.error and answer.error.startswith("refused: ")


async def test_a_slow_receiver_times_out_within_the_timeout(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    started = time.monotonic()
    answer = await post(client, f"{receiver.base}/slow", seconds=0.5)
    took = time.monotonic() - started
    assert answer == Answer(None, answer.latency_ms, "timeout")
    assert 0.45 <= took < 1.5 and 450 <= answer.latency_ms < 1500


async def test_the_request_goes_to_the_checked_address_with_the_real_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DNS rebinding: the connection uses the address the guard checked, not a second
    lookup; TLS is told the real name (SNI and certificate check), Host keeps the port."""
    checked: list[IPv4Address | IPv6Address] = [IPv4Address("93.184.215.14")]

    async def resolved(url: str, *, allow_private: bool) -> list[IPv4Address | IPv6Address]:
        assert url == "https://hooks.example:8443/in?x=1" and not allow_private
        return checked

    monkeypatch.setattr(webhook_http, "resolve_target", resolved)
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mock:
        got = await post_webhook(
            mock,
            "https://hooks.example:8443/in?x=1",
            BODY,
            HEADERS,
            allow_private=False,
            timeout=5,
        )
    assert got.ok and got.status_code == 204
    [request] = requests
    assert str(request.url) == "https://93.184.215.14:8443/in?x=1"
    assert request.headers["Host"] == "hooks.example:8443"
    assert request.extensions["sni_hostname"] == "hooks.example"
    assert request.content == BODY


async def test_ipv6_address_and_plain_http_need_no_tls_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolved(url: str, *, allow_private: bool) -> list[IPv4Address | IPv6Address]:
        return [IPv6Address("2606:2800:220:1::1")]

    monkeypatch.setattr(webhook_http, "resolve_target", resolved)
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mock:
        got = await post_webhook(
            mock, "http://hooks.example/in", BODY, HEADERS, allow_private=False, timeout=5
        )
    assert got.ok
    [request] = requests
    assert str(request.url) == "http://[2606:2800:220:1::1]/in"
    assert request.headers["Host"] == "hooks.example"
    assert "sni_hostname" not in request.extensions


async def test_the_next_address_is_tried_when_one_does_not_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def resolved(url: str, *, allow_private: bool) -> list[IPv4Address | IPv6Address]:
        return [IPv6Address("2606:2800:220:1::1"), IPv4Address("93.184.215.14")]

    monkeypatch.setattr(webhook_http, "resolve_target", resolved)
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host.startswith("2606"):
            raise httpx.ConnectError("Network is unreachable", request=request)
        return httpx.Response(202)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as mock:
        got = await post_webhook(
            mock, "https://hooks.example/", BODY, HEADERS, allow_private=False, timeout=5
        )
    assert got.status_code == 202 and hosts == ["2606:2800:220:1::1", "93.184.215.14"]


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate for `name` (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.parametrize(("served", "ok"), [("hooks.test", True), ("other.test", False)])
async def test_tls_checks_the_certificate_against_the_urls_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: str, ok: bool
) -> None:
    """The connection goes to the checked address (127.0.0.1 here), yet TLS is verified
    for the URL's host name: a certificate for another name fails the attempt."""
    cert, key = self_signed(tmp_path, served)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.host)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = free_socket()
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock, ssl_context=server_tls).start()

    async def resolved(url: str, *, allow_private: bool) -> list[IPv4Address | IPv6Address]:
        return [IPv4Address("127.0.0.1")]

    monkeypatch.setattr(webhook_http, "resolve_target", resolved)
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        async with httpx.AsyncClient(verify=trusting, trust_env=False) as tls_client:
            answer = await post_webhook(
                tls_client,
                f"https://hooks.test:{port}/in",
                BODY,
                HEADERS,
                allow_private=False,
                timeout=5,
            )
    finally:
        await runner.cleanup()
    if ok:
        assert answer.status_code == 204 and seen == [f"hooks.test:{port}"]
    else:
        assert answer.status_code is None and seen == []
        assert answer.error and answer.error.startswith("connection failed: TLS: ")
