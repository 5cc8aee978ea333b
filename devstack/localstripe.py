"""The local Stripe stand-in: localstripe's aiohttp app, served on 127.0.0.1 only (its own
command listens on every interface), with what it lacks for our use added in front:
Stripe's Idempotency-Key replay, and its store kept where we say (not /tmp).

`python -m devstack.localstripe --port 8420 --store .data/localstripe.pickle`"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import pickle
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from localstripe import server
from localstripe.resources import store

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REPLAYED: dict[tuple[str, str], tuple[str, int, bytes]] = {}


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    """As Stripe does: a POST repeating a key gets the first answer, not a second effect;
    the same key with other parameters is an error."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b"\0" + body).hexdigest()
    account = request.headers.get("Authorization", "")
    seen = _REPLAYED.get((account, key))
    if seen is not None:
        if seen[0] != fingerprint:
            error = {
                "error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent "
                    "requests can only be used with the same parameters.",
                }
            }
            return web.json_response(error, status=400)
        return web.Response(body=seen[2], status=seen[1], content_type="application/json")
    response = await handler(request)
    if isinstance(response, web.Response) and response.status < 500 and response.body:
        body_bytes = response.body if isinstance(response.body, bytes) else b""
        _REPLAYED[(account, key)] = (fingerprint, response.status, body_bytes)
    return response


def _persisting(path: Path) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Saves the objects and the idempotent answers together, so a key retried after a
    restart still gets its first answer: one write at a time, each whole (a file
    renamed into place), so concurrent requests never leave an older state on disk."""
    saving = asyncio.Lock()

    @web.middleware
    async def persist(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method in ("POST", "DELETE"):
                async with saving:
                    state = (dict(store), _REPLAYED)
                    data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                    await asyncio.to_thread(_replace, path, data)

    return persist


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _load(path: Path) -> None:
    saved = pickle.loads(path.read_bytes())
    objects, replayed = saved if isinstance(saved, tuple) else (saved, {})
    store.clear()
    store.update(objects)
    _REPLAYED.clear()
    _REPLAYED.update(replayed)


def build_app(store_path: Path | None = None) -> web.Application:
    """localstripe's app (one per process) with our middlewares in place of its /tmp one.
    Its store also saves itself to /tmp on every change, secrets and all: not here."""
    store.dump_to_disk = lambda: None
    app: web.Application = server.app
    middlewares = [m for m in app.middlewares if m is not server.save_store_middleware]
    middlewares.insert(0, idempotency)
    if store_path is not None:
        if store_path.exists():
            _load(store_path)
        middlewares.insert(0, _persisting(store_path))  # outermost: after the replay's record
    app.middlewares[:] = middlewares
    return app


async def serve(port: int, store_path: Path | None = None) -> web.AppRunner:
    runner = web.AppRunner(build_app(store_path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()

    async def forever() -> None:
        await serve(args.port, args.store)
        await asyncio.Event().wait()

    asyncio.run(forever())


if __name__ == "__main__":
    main()
