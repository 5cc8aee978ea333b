"""How every local stand-in (`sms`, `google_calendar`, `microsoft_graph`) is served when
a test or the bench runs it in its own event loop."""

from __future__ import annotations

import ssl

from aiohttp import web


async def serve(
    app: web.Application,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> web.AppRunner:
    """Serves `app` on this event loop (over TLS with `ssl_context`) until `await
    runner.cleanup()`; port 0 picks a free one (`runner.addresses`)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    return runner
