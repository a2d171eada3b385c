"""The ACS Calling SDK bundle that `make setup` builds (web/acs-calling) loads and works as far as it can offline.

A call needs Microsoft's cloud (createCallAgent alone takes ~14 s without it), so none is tried here, and
every request not to localhost is aborted: nothing leaves the machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser

from tests.browser.conftest import offline_page

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the browser's loop

BUNDLE = Path(__file__).parents[2] / "local_stack" / "softphone" / "static" / "vendor" / "acs-calling.js"
PAGE = """<!doctype html><meta charset="utf-8"><title>ACS bundle smoke test</title>
<script type="module">window.acs = await import("/vendor/acs-calling.js");</script>"""
PROBE = """async () => {
  const client = new acs.CallClient();
  const devices = await client.getDeviceManager();
  const access = await devices.askDevicePermission({audio: true, video: false});
  const mics = (await devices.getMicrophones()).map((m) => m.name);
  await client.dispose();
  return {exports: Object.keys(acs).sort(), audio: access.audio, mics};
}"""


@pytest_asyncio.fixture(loop_scope="session")
async def origin() -> AsyncIterator[str]:
    assert BUNDLE.is_file(), f"{BUNDLE} is missing: `make setup` builds it"

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def bundle(_: web.Request) -> web.FileResponse:
        return web.FileResponse(BUNDLE)

    app = web.Application()
    app.router.add_get("/smoke.html", page)
    app.router.add_get("/vendor/acs-calling.js", bundle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://localhost:{runner.addresses[0][1]}"  # the SDK refuses http://127.0.0.1
    await runner.cleanup()


async def test_the_bundle_loads_and_lists_the_fake_microphones(chromium: Browser, origin: str) -> None:
    context = await chromium.new_context()
    try:
        page, errors = await offline_page(context)
        await page.goto(f"{origin}/smoke.html")
        await page.wait_for_function("window.acs !== undefined", timeout=10_000)

        result = await page.evaluate(PROBE)

        assert result["exports"] == ["CallClient", "Features", "connectAcs", "remoteStream"]
        assert result["audio"] is True
        assert "Fake Default Audio Input" in result["mics"], result["mics"]
        assert errors == []
    finally:
        await context.close()
