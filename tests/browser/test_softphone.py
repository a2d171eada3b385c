"""The softphone in a real browser: Debian's Chromium, headless, driven by Playwright, with a fake
microphone playing a caller recording, against the whole local stack on loopback.

The caller starts speaking while the assistant's greeting is still playing, so one call shows the
page hearing the assistant, the barge-in clearing its playback, the caller's words recognised and
answered, and the hang-up. The screenshots in docs/ are made here, so they stay current.
"""

from __future__ import annotations

import asyncio
import os
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
from playwright.async_api import Page, async_playwright

from emulators.acs.emulator import AcsEmulator
from emulators.app_insights import IngestionEndpoint
from emulators.caller import RATE, script
from local_stack.recordings import Recordings
from local_stack.stack import LocalStack
from tests.browser.conftest import FLAGS, offline_page
from tests.e2e.conftest import FOREIGN, local_stack

DOCS = Path(__file__).resolve().parents[2] / "docs"
LEAD_IN_S = 2.0  # silence before the caller speaks: its words land in the middle of the greeting
TAIL_S = 20.0  # ≥100 ms of trailing silence, or Chromium's fake mic buzzes its last buffer forever
CALL_TIMEOUT_MS = 60_000


def caller_wav(path: Path) -> Path:
    """One browser launch plays one file: the caller's first line between silences, 24 kHz mono PCM16."""
    hello = np.frombuffer(script()[0].pcm, dtype="<i2")
    silence = np.zeros(int(RATE * LEAD_IN_S), dtype="<i2")
    pcm = np.concatenate([silence, hello, np.zeros(int(RATE * TAIL_S), dtype="<i2")])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture
async def stack(ingestion: IngestionEndpoint, tmp_path: Path) -> AsyncIterator[LocalStack]:
    settings = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        "TELEMETRY_EXPORT_INTERVAL_SECONDS": "0.2",
    }
    async with local_stack(**settings) as local:
        recordings = Recordings(local, tmp_path / "out")  # as `make up` saves every call
        local.observe(recordings)
        assert local.softphone is not None
        local.softphone.recordings = recordings
        yield local
        await recordings.close()


async def events(page: Page, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(
        "kind => window.softphone.events.filter(e => e.type === kind)", kind
    )
    return found


async def test_a_call_from_the_browser(
    stack: LocalStack, ingestion: IngestionEndpoint, tmp_path: Path, chromium_executable: Path
) -> None:
    mic = caller_wav(tmp_path / "caller.wav")
    port = urlsplit(stack.gateway_url).port
    async with async_playwright() as p:  # a browser of its own: the fake mic file is a launch flag
        browser = await p.chromium.launch(
            executable_path=chromium_executable,
            headless=True,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={mic}%noloop"],
        )
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 720})
            page, problems = await offline_page(context)
            # The ACS Calling SDK refuses 127.0.0.1; the page is served to localhost like a person opens it.
            await page.goto(f"http://localhost:{port}/")
            await page.wait_for_function("document.getElementById('state').textContent === 'idle'")
            await page.screenshot(path=str(DOCS / "softphone-idle.png"))

            await page.click("#call")
            # the caller's words, recognised, and the assistant's answer to them
            await page.wait_for_function(
                """() => { const e = window.softphone.events;
                   const asked = e.findIndex(m => m.type === 'turn' && m.role === 'caller' && /table/.test(m.text));
                   return asked >= 0 && e.slice(asked).some(m => m.type === 'turn' && m.role === 'assistant'); }""",
                timeout=CALL_TIMEOUT_MS,
            )
            await page.screenshot(path=str(DOCS / "softphone-call.png"))
            transcript = await page.inner_text("#turns")
            assert "book a table" in transcript.lower()

            heard = await page.evaluate("window.softphone.stats()")
            assert heard["played"] > RATE  # more than a second of the assistant's voice at any rate ≥ 24 kHz
            assert heard["rms"] > 0.02, heard  # speech, not silence or a click
            assert await page.evaluate("window.softphone.micPeak") > 0.01  # the fake mic was really heard

            # the barge-in: the media host sent StopAudio, and the page emptied its playback at once
            barge_ins = await events(page, "barge_in")
            clears = await page.evaluate("window.softphone.clears")
            assert barge_ins and clears
            assert any(c["held"] > 0 for c in clears), clears  # there was greeting audio left to drop
            # from StopAudio reaching the call's leg (where ACS would get it) to the page's empty playback
            leg = stack.emulator.calls[-1].leg
            assert leg is not None
            stops_ms = [1000 * (time.time() - (time.monotonic() - r.at)) for r in leg.of_kind("StopAudio")]
            assert len(stops_ms) == len(clears)
            clear_ms = [c["clearedAtWallMs"] - stop for c, stop in zip(clears, stops_ms, strict=True)]
            assert all(ms < 100 for ms in clear_ms), clear_ms
            print(f"StopAudio -> playback empty in the page: {[round(ms, 1) for ms in clear_ms]} ms")

            await page.click("#hangup")
            await page.wait_for_function(
                "document.getElementById('state').textContent === 'ended'", timeout=15_000
            )
            ended = (await events(page, "ended"))[-1]
            assert ended["why"] == "caller_hung_up"
            # the call's stereo recording and transcript, offered for download
            assert await page.is_visible("#recording") and await page.is_visible("#transcript")
            files = await page.evaluate(
                """async () => {
                  const wav = await (await fetch(document.getElementById('recording').href)).arrayBuffer();
                  const t = await (await fetch(document.getElementById('transcript').href)).json();
                  return {channels: new DataView(wav).getUint16(22, true), bytes: wav.byteLength,
                          said: t.turns.map(turn => turn.role + ': ' + turn.text)}; }"""
            )
            assert files["channels"] == 2 and files["bytes"] > 4 * RATE * 5  # over 5 s of stereo PCM16
            assert any(line.startswith("caller:") and "table" in line for line in files["said"])
            assert not await page.is_disabled("#call")
        finally:
            await browser.close()
    assert problems == []

    call = stack.emulator.calls[-1]
    assert "CallDisconnected" in call.callback_types()
    async with asyncio.timeout(10):  # the audit trail has it too, as an auditor would look it up
        while "CallDisconnected" not in _callbacks_audited(ingestion, call.correlation_id):
            await asyncio.sleep(0.1)


def _callbacks_audited(ingestion: IngestionEndpoint, correlation_id: str) -> list[str]:
    return [
        props["type"]
        for e in ingestion.envelopes
        if e["data"]["baseData"].get("name") == "CallbackReceived"
        and (props := e["data"]["baseData"].get("properties", {})).get("correlation_id") == correlation_id
    ]


async def test_call_me_gets_a_token_and_the_assistant_calls_the_page(
    stack: LocalStack, tmp_path: Path, chromium_executable: Path
) -> None:
    """Seed B's flow offline: an ACS user and token, then the assistant calls that user (the page)."""
    mic = tmp_path / "quiet.wav"
    with wave.open(str(mic), "wb") as w:  # a caller who only listens
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(RATE * 2 * 30))
    port = urlsplit(stack.gateway_url).port
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=chromium_executable,
            headless=True,
            args=[*FLAGS, f"--use-file-for-fake-audio-capture={mic}%noloop"],
        )
        try:
            page, problems = await offline_page(await browser.new_context())
            await page.goto(f"http://localhost:{port}/")
            await page.wait_for_function("document.getElementById('state').textContent === 'idle'")
            await page.select_option("#voice", "marin")
            await page.click("#call-me")
            await page.wait_for_function(
                "window.softphone.events.some(e => e.type === 'turn' && e.role === 'assistant')",
                timeout=CALL_TIMEOUT_MS,
            )
            transcript = await page.inner_text("#turns")
            assert f"token issued for 8:acs:{stack.emulator.resource_id}_" in transcript
            states = [e["state"] for e in await events(page, "state")]
            assert states[:3] == ["waiting", "ringing", "connected"]
            heard = await page.evaluate("window.softphone.stats()")
            assert heard["rms"] > 0.02, heard
            await page.click("#hangup")
            await page.wait_for_function(
                "document.getElementById('state').textContent === 'ended'", timeout=15_000
            )
        finally:
            await browser.close()
    assert problems == []
    call = stack.emulator.calls[-1]
    assert call.direction == "outbound" and call.callee["rawId"].startswith("8:acs:")


async def test_against_real_acs_the_page_answers_with_the_acs_calling_sdk(
    tmp_path: Path, chromium_executable: Path
) -> None:
    """`make up` with ACS settings: the emulator stands in for the ACS resource's REST (identity, calls);
    the SDK's own signalling needs Microsoft's cloud, so this goes as far as offline allows: the page
    gets a token the SDK accepts, its call agent comes up, and the call to that user is placed."""
    acs = AcsEmulator()
    await acs.start()
    env = {name: value for name, value in os.environ.items() if name not in FOREIGN}
    unreachable = "127.0.0.1:9"  # nothing will ring: the media path is not what this test is about
    env.update(acs.settings_env())
    env.update(CALLBACK_URI_HOST=f"http://{unreachable}", MEDIA_HOST_URL=f"ws://{unreachable}")
    stack = LocalStack(real_acs=True)
    saved = dict(os.environ)
    try:
        await stack.start(env)
        port = urlsplit(stack.gateway_url).port
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=chromium_executable, headless=True, args=FLAGS)
            try:
                page, problems = await offline_page(await browser.new_context())
                await page.goto(f"http://localhost:{port}/")
                await page.wait_for_function("document.getElementById('state').textContent === 'idle'")
                assert "Real ACS" in await page.inner_text("#network")
                assert await page.is_disabled("#call")  # no emulated number to ring
                await page.click("#call-me")
                await page.wait_for_function(
                    "/agent ready|error/.test(document.getElementById('turns').innerText)", timeout=45_000
                )
                transcript = await page.inner_text("#turns")
                assert "token issued for 8:acs:" in transcript and "agent ready" in transcript, transcript
                await page.wait_for_function("document.getElementById('state').textContent === 'ringing'")
            finally:
                await browser.close()
        assert problems == []
        created = next(r for r in acs.rest.requests if r.operation == "create")
        user = next(iter(acs.rest.identities.users))
        assert created.body["targets"][0]["rawId"] == user
    finally:
        await stack.close()
        await acs.close()
        os.environ.clear()
        os.environ.update(saved)
