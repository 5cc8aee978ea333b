"""The SSRF guard (notifications/targets.py, docs/webhooks.md#where-webhooks-may-point).
Literal addresses need no DNS; names that must resolve to a given address use a
stand-in resolver."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from ipaddress import IPv4Address, ip_address
from typing import Any

import pytest

from notifications.targets import TargetRefused, check_url, resolve_target

REFUSED_WHEN_PRIVATE = [
    "http://127.0.0.1/hook",
    "http://127.1:8080/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.5.4/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[fc00::1]/hook",
    "http://[fe80::1]/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://2130706433/hook",
    "http://localhost:8000/hook",
]


def fake_dns(answers: dict[str, list[str]]) -> Callable[..., Any]:
    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in answers[host]
        ]

    return getaddrinfo


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], None]:
    def install(answers: dict[str, list[str]]) -> None:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_dns(answers))

    return install


@pytest.mark.parametrize("url", REFUSED_WHEN_PRIVATE)
async def test_private_targets_are_refused_when_the_setting_is_off(url: str) -> None:
    with pytest.raises(TargetRefused, match="not a public address"):
        await resolve_target(url, allow_private=False)


@pytest.mark.parametrize("url", REFUSED_WHEN_PRIVATE)
async def test_private_targets_are_allowed_when_the_setting_is_on(url: str) -> None:
    assert await resolve_target(url, allow_private=True)


async def test_the_refusal_names_the_address_and_why() -> None:
    with pytest.raises(TargetRefused) as caught:
        await resolve_target("http://[::ffff:127.0.0.1]:9/", allow_private=False)
    assert str(caught.value) == "::ffff:127.0.0.1 is not a public address (IPv4-mapped loopback)"


async def test_public_literal_needs_no_dns(dns: Callable[[dict[str, list[str]]], None]) -> None:
    dns({})  # any lookup would fail
    assert await resolve_target("https://93.184.215.14/hook", allow_private=False) == [
        IPv4Address("93.184.215.14")
    ]
    assert await resolve_target("https://[2606:2800:220:1::1]:8443/", allow_private=False) == [
        ip_address("2606:2800:220:1::1")
    ]


async def test_name_resolving_to_loopback_is_refused(
    dns: Callable[[dict[str, list[str]]], None],
) -> None:
    dns({"rebind.example": ["127.0.0.1"]})
    with pytest.raises(TargetRefused, match=r"rebind\.example resolves to 127\.0\.0\.1"):
        await resolve_target("https://rebind.example/hook", allow_private=False)
    assert await resolve_target("https://rebind.example/hook", allow_private=True) == [
        IPv4Address("127.0.0.1")
    ]


async def test_one_private_address_among_public_ones_is_enough_to_refuse(
    dns: Callable[[dict[str, list[str]]], None],
) -> None:
    dns({"mixed.example": ["93.184.215.14", "fd00::7"]})
    with pytest.raises(TargetRefused, match=r"fd00::7"):
        await resolve_target("https://mixed.example/", allow_private=False)


async def test_public_name_resolves_to_its_addresses(
    dns: Callable[[dict[str, list[str]]], None],
) -> None:
    dns({"hooks.example": ["93.184.215.14", "2606:2800:220:1::1", "93.184.215.14"]})
    assert await resolve_target("https://hooks.example/", allow_private=False) == [
        ip_address("93.184.215.14"),
        ip_address("2606:2800:220:1::1"),
    ]


async def test_unresolvable_host_is_refused(dns: Callable[[dict[str, list[str]]], None]) -> None:
    dns({})
    with pytest.raises(TargetRefused, match="could not be resolved"):
        await resolve_target("https://nowhere.invalid/", allow_private=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://93.184.215.14/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://93.184.215.14/", "http:// or https://"),
        ("93.184.215.14/hook", "http:// or https://"),
        ("https:///hook", "no host"),
        ("https://user:pw@93.184.215.14/", "user name or password"),
        ("https://user@93.184.215.14/", "user name or password"),
        ("https://93.184.215.14:0/", "port"),
        ("https://93.184.215.14:70000/", "port"),
        ("https://93.184.215.14:http/", "not valid"),
        ("https://93.184.215.14/a b", "whitespace"),
        ("https://93.184.215.14/\nHost: x", "whitespace"),
        ("https://evil.example\\@127.0.0.1/", "backslash"),
        ("https://93.184.215.14/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_check_url_refuses_bad_syntax(url: str, why: str) -> None:
    with pytest.raises(TargetRefused, match=why):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/holdfast?x=1",
        "http://hooks.example.com:8080/",
        "HTTPS://HOOKS.EXAMPLE.COM/",
        "https://bücher.example/hook",
        "https://[2606:2800:220:1::1]/",
        "https://93.184.215.14:65535/" + "a" * 2000,
    ],
)
def test_check_url_accepts_plain_http_urls(url: str) -> None:
    check_url(url)
