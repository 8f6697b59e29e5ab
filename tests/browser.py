"""Headless Chromium for the browser tests (Playwright's async API on the test's io_loop).

Debian's `chromium` package is used (never `playwright install`). A missing browser
fails the test with a clear message; only RACEDASH_SKIP_BROWSER=1 skips on purpose.
"""

from __future__ import annotations

import os
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import pytest
from playwright.async_api import ConsoleMessage, Page, async_playwright

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
LAPTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 812}


def chromium_path() -> str:
    if os.environ.get("RACEDASH_SKIP_BROWSER") == "1":
        pytest.skip("RACEDASH_SKIP_BROWSER=1")
    path = os.environ.get("RACEDASH_CHROMIUM", "/usr/bin/chromium")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)) and not shutil.which(path):
        pytest.fail(f"Chromium not found at {path}: install Debian's `chromium` package (apt-get install chromium)")
    return path


class BrowserPage:
    """One page plus everything it logged; assert_clean() fails on any console error."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.errors.append(f"console.{message.type}: {message.text}")

    def assert_clean(self, allowed: tuple[str, ...] = ()) -> None:
        """No console errors, except those containing one of ``allowed`` (expected network failures)."""
        unexpected = [e for e in self.errors if not any(a in e for a in allowed)]
        assert not unexpected, "\n".join(unexpected)

    async def screenshot(self, name: str, full_page: bool = True) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path


class Browser:
    def __init__(self, browser) -> None:
        self.browser = browser

    async def open(self, url: str, viewport: dict | None = None) -> BrowserPage:
        context = await self.browser.new_context(viewport=viewport or LAPTOP, service_workers="block")
        page = BrowserPage(await context.new_page())
        page.page.set_default_timeout(10_000)
        await page.page.goto(url)
        return page


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield Browser(browser)
        finally:
            await browser.close()
