"""The API's edge: before any route runs, refuse input PostgreSQL cannot store (a NUL
character, a lone UTF-16 surrogate) and JSON whose meaning is ambiguous (a key given twice,
NaN), as 422 `validation_error` in the contract's error shape (docs/api.md).

A pure ASGI middleware, as it sits on the booking path: it checks the decoded path and
query of every request, and parses a request body once, as JSON, to check every key and
string in it (free-form `metadata` included). The route then receives the body unchanged.
A body that is not JSON passes untouched, for FastAPI to answer as it would anyway."""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response, validation_response
from api.middleware import HttpMiddleware

# Real bodies are a few KiB (metadata at most 16 KiB): the edge parses a body before the
# caller's key is checked, so the cap bounds what an anonymous client can make it do.
MAX_BODY = 256 * 1024
# Digits an integer may have: more is no count or amount anyone means (and Python's int()
# refuses over 4300).
MAX_DIGITS = 30
# Stripe signs the exact bytes, and its route answers 400 for anything it cannot verify.
UNCHECKED_BODIES = ("/v1/webhooks/",)

# Decoded strictly, JSON text holds a NUL or a surrogate only as an escape: \u0000, or
# \uD800-\uDFFF (a valid pair too, which the walk then accepts).
# An escaped backslash (`\\u0000`, the text "\u0000") is no escape: it is skipped.
_SUSPECT_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F])")

Detail = dict[str, str]


def unstorable(text: str) -> tuple[str, str] | None:
    """(type, message) saying why PostgreSQL could not store `text` as text, or None."""
    if "\x00" in text:
        return "string_nul", "must not contain NUL (\\u0000) characters"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "string_surrogate", "must not contain lone UTF-16 surrogates"
    return None


def _label(text: str) -> str:
    """`text` as a printable part of a field path (escaped if it is itself at fault)."""
    if unstorable(text) is None:
        return text
    return text.encode("unicode_escape").decode("ascii")


def _detail(path: tuple[str | int, ...], kind: str, message: str) -> Detail:
    return {"field": ".".join(str(p) for p in path), "message": message, "type": kind}


class _Duplicated(dict[str, Any]):
    """A JSON object that gave `key` twice (its later value kept), marked for the walk."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


class _NonFinite:
    """NaN, Infinity, or a number too large for a float: not JSON PostgreSQL will store."""

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def message(self) -> str:
        if self.literal in ("NaN", "Infinity", "-Infinity"):
            return f"{self.literal} is not a JSON number"
        return f"{self.literal[:40]} is too large a number"


def _first_problem(value: Any) -> Detail | None:
    """The first fault in a parsed body, in document order. Iterative, so a body nested
    as deeply as the parser allows cannot overflow the walk."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if isinstance(node, _Duplicated):
                key = node.key
                return _detail(
                    (*path, _label(key)),
                    "json_duplicate_key",
                    f"the key {key!r} appears more than once in this object",
                )
            children: list[tuple[Any, tuple[str | int, ...]]] = []
            for key, item in node.items():
                fault = unstorable(key)
                if fault is not None:
                    return _detail((*path, _label(key)), fault[0], f"keys {fault[1]}")
                children.append((item, (*path, key)))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend(reversed([(item, (*path, i)) for i, item in enumerate(node)]))
        elif isinstance(node, str):
            fault = unstorable(node)
            if fault is not None:
                return _detail(path, *fault)
        elif isinstance(node, _NonFinite):
            return _detail(path, "json_number", node.message())
    return None


def check_json(body: bytes) -> Detail | None:
    """What is wrong with a JSON body, or None: also for a body that is not JSON at all.
    Decoded as FastAPI decodes it (UTF-8, -16 or -32, a BOM allowed), so both read the
    same text."""
    encoding = json.detect_encoding(body)
    try:
        text = body.decode(encoding)
        suspect = _SUSPECT_ESCAPE.search(text) is not None
    except UnicodeDecodeError:
        try:  # raw surrogate bytes: json.loads lets them through, so look at them
            text = body.decode(encoding, "surrogatepass")
        except UnicodeDecodeError:
            return _detail((), "json_invalid", f"the body is not {encoding} text")
        suspect = True
    odd = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal odd
        obj = dict(items)
        if len(obj) == len(items):
            return obj
        odd = True
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                return _Duplicated(items, key)
            seen.add(key)
        raise AssertionError("unreachable: fewer keys than pairs means one repeats")

    def constant(literal: str) -> _NonFinite:
        nonlocal odd
        odd = True
        return _NonFinite(literal)

    def number(literal: str) -> float | _NonFinite:
        nonlocal odd
        value = float(literal)
        if math.isfinite(value):
            return value
        odd = True
        return _NonFinite(literal)

    def integer(literal: str) -> int | _NonFinite:
        nonlocal odd
        if len(literal.lstrip("-")) <= MAX_DIGITS:
            return int(literal)
        odd = True
        return _NonFinite(literal)

    try:
        value = json.loads(
            text,
            object_pairs_hook=pairs,
            parse_constant=constant,
            parse_float=number,
            parse_int=integer,
        )
    except RecursionError:
        return _detail((), "json_depth", "the body is nested too deeply")
    except ValueError:  # not JSON: FastAPI answers it as it always has
        return None
    return _first_problem(value) if suspect or odd else None


def check_target(scope: Scope) -> Detail | None:
    """What is wrong with the request's decoded path or query parameters, or None."""
    fault = unstorable(scope["path"])
    if fault is not None:
        return _detail(("path",), *fault)
    query: bytes = scope.get("query_string", b"")
    # Percent-decoding turns bad bytes into U+FFFD, so only %00 (or a raw NUL) yields one.
    if b"%00" not in query and b"\x00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        fault = unstorable(name)
        if fault is not None:
            return _detail(("query", _label(name)), fault[0], f"parameter names {fault[1]}")
        fault = unstorable(value)
        if fault is not None:
            return _detail(("query", name), *fault)
    return None


def _declared_body(scope: Scope) -> tuple[bool, int | None]:
    """(has a body, its declared length if any) from the headers."""
    has_body, length = False, None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
            has_body = has_body or value != b"0"
        elif name == b"transfer-encoding":
            has_body = True
    return has_body, length


def _too_large(limit: int) -> JSONResponse:
    return error_response(
        413,
        "payload_too_large",
        f"the request body must be at most {limit} bytes",
        headers={"Connection": "close"},  # rather than read the rest of it
    )


class EdgeMiddleware(HttpMiddleware):
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        super().__init__(app)
        self.max_body = max_body

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        fault = check_target(scope)
        if fault is not None:
            await validation_response([fault])(scope, receive, send)
            return
        has_body, declared = _declared_body(scope)
        if not has_body or scope["path"].startswith(UNCHECKED_BODIES):
            await self.app(scope, receive, send)
            return
        if declared is not None and declared > self.max_body:
            await _too_large(self.max_body)(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client has gone
                return
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _too_large(self.max_body)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        fault = check_json(body) if body else None
        if fault is not None:
            await validation_response([fault])(scope, receive, send)
            return
        pending: Message | None = {"type": "http.request", "body": body, "more_body": False}

        async def replay() -> Message:
            nonlocal pending
            if pending is None:
                return await receive()  # after the body: the disconnect, when it comes
            message, pending = pending, None
            return message

        await self.app(scope, replay, send)


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body of a route whose bytes the edge leaves alone (a signed webhook, a push),
    read no further than `limit`: None when it is larger, or says it is."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return body
