"""One HTTP attempt of a webhook delivery, and the send-time half of the SSRF guard
(notifications/targets.py): the request goes to an address checked a moment before, never
to a second DNS lookup, so a name that resolves to a public address when checked and to a
private one when connecting (DNS rebinding) cannot reach the private network."""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass

import httpx

from notifications.targets import TargetRefused, parse_url, resolve_target

# The receiver's answer is read up to this much, then dropped: only its status counts.
MAX_ANSWER_BYTES = 64 * 1024
_MAX_ERROR_LENGTH = 300


@dataclass(frozen=True)
class Answer:
    """What one attempt got: the status code (None: no HTTP answer), how long it took from
    the start of the attempt, and what went wrong (None for an answer that is no redirect)."""

    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code <= 299


def webhook_client() -> httpx.AsyncClient:
    """A client fit for `post_webhook`: no proxies from the environment (a proxy would do
    its own DNS lookup) and no redirects."""
    return httpx.AsyncClient(trust_env=False, follow_redirects=False)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:_MAX_ERROR_LENGTH]


def _connect_reason(exc: BaseException) -> str:
    """The cause under httpx's wrapping: `connection refused`, `TLS: ...`."""
    seen: BaseException | None = exc
    for _ in range(6):  # httpx's error, httpcore's, anyio's OSError, the socket's
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return f"TLS: {_short(seen)}"
        if isinstance(seen, OSError) and isinstance(seen.errno, int) and seen.errno:
            return os.strerror(seen.errno).lower()
        seen = seen.__cause__ or seen.__context__
    return _short(exc)


async def _send(
    client: httpx.AsyncClient,
    url: httpx.URL,
    address: str,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
) -> int:
    """POST to `address` as if to `url`'s host; the status code. The answer's body is read
    up to MAX_ANSWER_BYTES and dropped."""
    host = url.raw_host.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    request = client.build_request(
        "POST",
        url.copy_with(host=address),
        content=body,
        # The original `host[:port]`: what the receiver's virtual hosting expects.
        headers={**headers, "Host": url.netloc.decode("ascii")},
        extensions=extensions,
        timeout=httpx.Timeout(seconds),
    )
    response = await client.send(request, stream=True, follow_redirects=False)
    try:
        read = 0
        if not response.is_stream_consumed:  # a transport may hand the body over read
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break
    finally:
        await response.aclose()
    return response.status_code


async def post_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout: float,  # noqa: ASYNC109 (the attempt's own budget, as the caller names it)
) -> Answer:
    """POST `body` to `url` once. Never raises for what the network or the receiver does:
    a refused target, a timeout (the whole attempt, DNS included, within `timeout`
    seconds), a failed connection or a broken answer come back as an Answer with an
    `error`. A redirect is not followed and counts as a failure."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        parsed = parse_url(url)
        async with asyncio.timeout(timeout):
            addresses = await resolve_target(url, allow_private=allow_private)
    except TargetRefused as exc:
        return Answer(None, 0, f"refused: {exc}")
    except TimeoutError:
        return Answer(None, elapsed(), "timeout")

    error = "no address to connect to"
    try:
        async with asyncio.timeout(max(timeout - (time.monotonic() - started), 0.001)):
            for address in addresses:
                try:
                    status = await _send(client, parsed, str(address), body, headers, timeout)
                except httpx.ConnectError as exc:  # the next address may answer
                    error = f"connection failed: {_connect_reason(exc)}"
                    continue
                if 300 <= status <= 399:
                    return Answer(status, elapsed(), "redirect not followed")
                return Answer(status, elapsed(), None)
    except (TimeoutError, httpx.TimeoutException):
        return Answer(None, elapsed(), "timeout")
    except httpx.RemoteProtocolError as exc:
        return Answer(None, elapsed(), f"bad answer: {_short(exc)}")
    except (httpx.HTTPError, OSError) as exc:
        return Answer(None, elapsed(), f"{type(exc).__name__}: {_short(exc)}")
    return Answer(None, elapsed(), error)
