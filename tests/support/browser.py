"""Browser tests' parts (docs/booking-page.md#browser-tests): Debian's Chromium, found on
the PATH and driven by Playwright (never a downloaded browser), the flags it needs here,
axe for the accessibility checks, and where screenshots go."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import axe_playwright_python
import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NEEDS_CHROMIUM = pytest.mark.skipif(
    CHROMIUM is None, reason="browser tests: Chromium is not installed"
)
SCREENSHOTS = Path(__file__).parents[2] / "test-results" / "screenshots"
AXE = Path(axe_playwright_python.__file__).parent / "axe.min.js"
# As root, and on a machine whose network is closed: no sandbox, no calls home.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def serious_violations(page: Page) -> list[str]:
    """axe's serious and critical findings on the page as it is now. (axe goes in as an
    inline script: the page's context must bypass its Content-Security-Policy.)"""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run()")
    return [
        f"{v['id']}: {v['help']}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
