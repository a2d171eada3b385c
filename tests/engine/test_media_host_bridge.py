"""The media host, unchanged, on the offline engine: the greeting reaches the caller, the caller is heard."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.conftest import MODEL_KEY, StartMediaHost

from .caller import script
from .conftest import StartEngine


async def test_media_host_greets_and_hears_the_caller_through_the_engine(
    start_media_host: StartMediaHost, start_engine: StartEngine
) -> None:
    engine = await start_engine(api_key=MODEL_KEY)  # the key the media host is configured with
    host = await start_media_host(AZURE_OPENAI_ENDPOINT=engine.url)
    leg = await host.call()

    await leg.wait_for("AudioData", count=25, timeout=10)  # half a second of the greeting
    greeting = np.frombuffer(leg.audio_received(), dtype=np.int16).astype(np.float64)
    assert np.sqrt(np.mean(greeting**2)) > 300  # a voice, not silence

    line = script()[0]  # "Hi, I would like to book a table please."
    await leg.stream(line.pcm, realtime=False)
    (call,) = host.state.calls
    async with asyncio.timeout(10):
        while not [t for t in call.turns if t.role == "caller"]:
            await asyncio.sleep(0.02)
    heard = next(t for t in call.turns if t.role == "caller").text
    assert all(k in heard.split() for k in line.keywords), heard
    await leg.close()
