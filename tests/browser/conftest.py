"""Debian's Chromium driven by the playwright wheel (never `playwright install`: its CDN is unreachable)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, Route, async_playwright

CHROMIUM = Path("/usr/lib/chromium/chromium")  # the ELF: Debian's /usr/bin/chromium wrapper prints noise
FLAGS = [
    "--use-fake-ui-for-media-stream",  # grants the microphone without a prompt
    "--use-fake-device-for-media-stream",  # the machine may have no audio device at all
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def chromium_executable() -> Path:
    """Skips where Chromium is not installed, except under CI, where `make test` must have installed it."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium(chromium_executable: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:  # kills the browser even if the test process dies
        browser = await pw.chromium.launch(executable_path=chromium_executable, headless=True, args=FLAGS)
        yield browser
        await browser.close()


async def offline_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page that reaches localhost only (anything else is aborted: this machine has no internet) and
    the list of its console errors and uncaught exceptions, bar the ACS SDK's complaints about the cloud
    it cannot reach (its config service, ECS)."""
    blocked: list[str] = []

    async def offline(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "localhost":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort()

    problems: list[str] = []

    def on_console(msg: ConsoleMessage) -> None:
        offline_noise = msg.text.startswith("ECS - ") or msg.location["url"] in blocked
        if msg.type == "error" and not offline_noise:
            problems.append(msg.text)

    await context.route("**/*", offline)
    page = await context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    return page, problems
