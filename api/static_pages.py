"""The pages the API process serves as static files (docs/booking-page.md,
docs/console.md): each a folder of one HTML file and its assets under `api/static/`,
read once, answered with a short cache and a Content-Security-Policy that allows scripts
and connections to this origin (and to whatever other origins the page names) only."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from fastapi.responses import Response

from api.errors import not_found

STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# The files change only with a deploy; a short cache keeps a reload quick.
CACHED = "public, max-age=300"


class StaticPage:
    def __init__(self, folder: str, assets: tuple[str, ...]) -> None:
        self._folder = STATIC / folder
        self._assets = assets

    @cached_property
    def _files(self) -> dict[str, bytes]:
        names = ("index.html", *self._assets)
        return {name: (self._folder / name).read_bytes() for name in names}

    def html(self, *origins: str) -> Response:
        others = " ".join(origins)
        policy = (
            "default-src 'none'; "
            f"script-src 'self' {others}; connect-src 'self' {others}; "
            + (f"frame-src {others}; " if others else "")
            + "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'"
        )
        return Response(
            self._files["index.html"],
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": policy, "Cache-Control": CACHED},
        )

    def asset(self, name: str) -> Response:
        if name not in self._assets:
            raise not_found("file")
        return Response(
            self._files[name],
            media_type=TYPES[Path(name).suffix],
            headers={"Cache-Control": CACHED},
        )
