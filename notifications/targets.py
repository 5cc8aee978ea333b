"""Where a webhook may be sent: the guard against server-side request forgery
(docs/webhooks.md#where-webhooks-may-point). A URL is checked when an endpoint is saved
and again at every attempt, which connects to the very addresses checked here
(activities/webhook_http.py), so a DNS answer that changes in between cannot lead a
request into the private network."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import httpx

MAX_URL_LENGTH = 2048
DNS_TIMEOUT_SECONDS = 5.0
# DNS64's well-known prefix (RFC 6052): the last 32 bits are an IPv4 address.
_NAT64 = IPv6Network("64:ff9b::/96")
# Shared address space (carrier-grade NAT, RFC 6598): neither private nor global.
_SHARED = IPv4Network("100.64.0.0/10")

IPAddress = IPv4Address | IPv6Address


class TargetRefused(ValueError):
    """A URL a webhook may not be sent to; the message says why."""


def parse_url(url: str) -> httpx.URL:
    """The URL as httpx will send it, after the syntax rules of `check_url`. One parser
    for checking and sending, so the two cannot disagree about the host."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise TargetRefused("the URL contains whitespace, control characters or a backslash")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise TargetRefused(f"the URL is not valid: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise TargetRefused("the URL must start with http:// or https://")
    if not parsed.raw_host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("the URL may not contain a user name or password")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise TargetRefused("the port must lie between 1 and 65535")
    return parsed


def check_url(url: str) -> None:
    """Refuse (TargetRefused) a URL that is not http(s) with a host, without user info,
    with a port in 1-65535, at most 2048 characters. Syntax only: no DNS."""
    parse_url(url)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded(addr: IPv6Address) -> list[tuple[str, IPv4Address]]:
    """IPv4 addresses an IPv6 address carries to an IPv4 host, and in what form."""
    found: list[tuple[str, IPv4Address]] = []
    if addr.ipv4_mapped is not None:
        found.append(("IPv4-mapped", addr.ipv4_mapped))
    if addr in _NAT64:
        found.append(("NAT64", IPv4Address(int(addr) & 0xFFFFFFFF)))
    if addr.sixtofour is not None:
        found.append(("6to4", addr.sixtofour))
    if addr.teredo is not None:
        server, client = addr.teredo
        found += [("Teredo", server), ("Teredo", client)]
    return found


def _kind(addr: IPAddress) -> str | None:
    """What makes an address unfit for a webhook, or None for a public one."""
    if addr.is_unspecified:
        return "unspecified"
    if addr.is_loopback:
        return "loopback"
    if addr.is_link_local:
        return "link-local"
    if addr.is_multicast:
        return "multicast"
    if addr.is_private:
        return "private"
    if addr.is_reserved:
        return "reserved"
    if isinstance(addr, IPv4Address) and addr in _SHARED:
        return "shared (carrier-grade NAT)"
    if not addr.is_global:
        return "non-public"
    return None


def refusal(addr: IPAddress) -> str | None:
    """Why `addr` may not be a webhook's target, or None. An IPv6 form that carries an
    IPv4 address (mapped, NAT64, 6to4, Teredo) is judged by the IPv4 address too; mapped
    and NAT64 ones only by it, as they are that IPv4 host."""
    if isinstance(addr, IPv6Address):
        embedded = _embedded(addr)
        for form, v4 in embedded:
            kind = _kind(v4)
            if kind is not None:
                return f"{form} {kind}"
        if embedded and embedded[0][0] in ("IPv4-mapped", "NAT64"):
            return None
    return _kind(addr)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(DNS_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
    except TimeoutError as exc:
        raise TargetRefused(f"{host} could not be resolved in time") from exc
    except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError
        raise TargetRefused(f"{host} could not be resolved") from exc
    found: list[IPAddress] = []
    for family, *_, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = _literal(str(sockaddr[0]))
        if addr is not None and addr not in found:
            found.append(addr)
    if not found:
        raise TargetRefused(f"{host} has no IPv4 or IPv6 address")
    return found


async def resolve_target(url: str, *, allow_private: bool) -> list[IPv4Address | IPv6Address]:
    """The addresses a request to `url` may connect to, in the resolver's order. Refused
    (TargetRefused) for a URL `check_url` refuses, a host that does not resolve, or, unless
    `allow_private`, a host with *any* address that is not public: one private address
    among public ones is enough, as the connection could use it."""
    parsed = parse_url(url)
    host = parsed.raw_host.decode("ascii")
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = await _resolve(host, port)
    if not allow_private:
        for addr in addresses:
            why = refusal(addr)
            if why is not None:
                where = host if literal is not None else f"{host} resolves to {addr}, which"
                raise TargetRefused(f"{where} is not a public address ({why})")
    return addresses


GOOGLE_TOKEN_HOSTS = ("oauth2.googleapis.com", "www.googleapis.com", "accounts.google.com")


def check_token_uri(uri: str, api_base: str) -> None:
    """A Google service-account key names its own token endpoint, and the worker POSTs a
    signed assertion to it: a key a tenant uploads must not make the worker call into the
    private network. Google's own endpoints pass, over https; so does the host this
    deployment's Calendar API is configured at (GOOGLE_CALENDAR_API_BASE: a stand-in or
    a proxy the operator chose). Raises TargetRefused otherwise."""
    parsed = parse_url(uri)
    host = parsed.host.lower()
    if parsed.scheme == "https" and host in GOOGLE_TOKEN_HOSTS:
        return
    if host and host == parse_url(api_base).host.lower():
        return
    raise TargetRefused(
        "token_uri must be Google's token endpoint (https://oauth2.googleapis.com/token)"
    )
