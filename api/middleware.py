"""The shape the API's own pure-ASGI middleware share: they act on HTTP requests and let
anything else (the lifespan) through untouched. Pure ASGI rather than Starlette's
`BaseHTTPMiddleware`, which costs a task and a copy of the body per request."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


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
