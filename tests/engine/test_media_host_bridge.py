"""The media host, unchanged, on the offline engine: the greeting reaches the caller, the caller is heard,
and a call survives the loss of its model connection."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np

from tests.conftest import MODEL_KEY, StartMediaHost

from .caller import CallerLine, script
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


async def test_a_call_whose_model_connection_drops_continues_where_it_was(
    start_media_host: StartMediaHost, start_engine: StartEngine
) -> None:
    engine = await start_engine(
        api_key=MODEL_KEY, pace=0
    )  # answers made at once; the host plays them in time
    host = await start_media_host(AZURE_OPENAI_ENDPOINT=engine.url)
    leg = await host.call()
    leg.start_stream()  # a frame every 20 ms, as ACS sends for a live call
    (call,) = host.state.calls

    def answers() -> list[str]:
        return [t.text for t in call.turns if t.role == "assistant"]

    async def answer_to(line: CallerLine) -> str:
        """The caller waits for the assistant to finish, says `line`, and gets an answer."""
        async with asyncio.timeout(20):
            while leg.assistant_quiet_for() < 0.5:
                await asyncio.sleep(0.05)
            before = len(answers())
            await leg.say(line.pcm)
            while len(answers()) == before:
                await asyncio.sleep(0.05)
        return answers()[-1]

    lines = script()
    async with asyncio.timeout(10):
        while not answers():  # the greeting
            await asyncio.sleep(0.05)
    assert await answer_to(lines[0]) == "I'd be happy to help you book a table. For how many people?"
    assert await answer_to(lines[1]) == "A table for two. What day and time would you like?"
    assert (
        await answer_to(lines[2]) == "So that's a table for two on Friday at seven thirty. Shall I book it?"
    )

    (dropped,) = engine.engine.sessions
    await dropped.close(aiohttp.WSCloseCode.INTERNAL_ERROR, "dropped")  # the model's socket breaks
    async with asyncio.timeout(10):
        while dropped in engine.engine.sessions or not engine.engine.sessions:
            await asyncio.sleep(0.05)

    # the new session knows the booking and the question it asked (a fresh one would ask it again)
    said = await answer_to(lines[4])  # "Yes please."
    assert said.startswith("Great, your table for two on Friday at seven thirty is booked.")
    assert not leg.closed
    await leg.close()
