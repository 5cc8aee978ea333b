"""Fixtures the end-to-end modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser

from tests.support.browser import chromium


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One Chromium for every browser test (tests/support/browser.py)."""
    async with chromium() as launched:
        yield launched
