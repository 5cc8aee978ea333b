"""The shape the API's own pure-ASGI middleware share: they act on HTTP requests and let
anything else (the lifespan) through untouched. Pure ASGI rather than Starlette's
`BaseHTTPMiddleware`, which costs a task and a copy of the body per request."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ResponseHeaders(HttpMiddleware):
    """Adds headers to every answer, whatever the route returned (a model, a Response of
    its own, an error). `extra` says which, given the request and the headers set."""

    def extra(self, scope: Scope, headers: Headers) -> Headers:
        raise NotImplementedError

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message = {**message, "headers": headers + self.extra(scope, headers)}
            await send(message)

        await self.app(scope, receive, with_headers)
