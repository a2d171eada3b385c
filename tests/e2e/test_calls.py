"""Whole calls through the real SDKs and real sockets: what a caller and an operator would notice."""

from __future__ import annotations

import asyncio
import json
import os
import time
import wave
from pathlib import Path

import aiohttp
import numpy as np

from emulators.acs.caller import at_rate, converse, script, wait_for_assistant_turn
from emulators.acs.emulator import EmulatedCall
from functions import runtime as functions_runtime
from local_stack import demo
from local_stack.stack import LocalStack
from media_host.call_session import CallSession

LINES = {line.file: line for line in script()}


async def session_of(stack: LocalStack, call: EmulatedCall) -> CallSession:
    async with asyncio.timeout(10):
        while (session := stack.session(call.call_connection_id or "")) is None:
            await asyncio.sleep(0.02)
    return session


def test_demo_books_a_table_and_the_assistant_hangs_up(tmp_path: Path, monkeypatch) -> None:
    """`make demo` itself: the exit code, the transcript and the stereo recording it leaves."""
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_COMMUNICATION_CONNECTION_STRING", "ACS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    saved = dict(os.environ)
    try:
        assert demo.main(tmp_path) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)

    (transcript_file,) = tmp_path.glob("call-*.json")
    transcript = json.loads(transcript_file.read_text())
    summary = transcript["summary"]
    assert summary["hang_up"] == "hung_up_by_app" and summary["media_host_end_reason"] == "assistant_ended"
    assert summary["tools"] == {"end_call": 1}
    assert summary["callbacks"] == ["CallConnected", "MediaStreamingStarted", "CallDisconnected"]
    assistant = " ".join(t["text"] for t in transcript["turns"] if t["role"] == "assistant")
    assert "table for two on friday at seven thirty is booked" in assistant.lower()
    caller = " ".join(t["text"] for t in transcript["turns"] if t["role"] == "caller")
    assert "book a table" in caller

    (recording,) = tmp_path.glob("call-*.wav")
    with wave.open(str(recording)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 24_000)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2).astype(float)
    caller_seconds, assistant_seconds = (float((np.abs(stereo[:, ch]) > 500).sum()) / 24_000 for ch in (0, 1))
    assert caller_seconds > 5 and assistant_seconds > 10  # both sides are really in the recording


async def test_barge_in_stops_the_assistant_and_it_answers_the_new_question(stack: LocalStack) -> None:
    call = await stack.emulator.incoming_call(stack.incoming_call_url)
    async with asyncio.timeout(10):
        await call.media_ready.wait()
    leg = call.leg
    assert leg is not None
    session = await session_of(stack, call)
    async with asyncio.timeout(10):
        while not leg.heard():
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.8)  # well into the greeting (about 4 s long)

    question = LINES["04_opening_hours.wav"]
    await leg.say(at_rate(question.pcm, leg.sample_rate))  # talks over the greeting
    await wait_for_assistant_turn(leg, since=time.monotonic(), quiet_s=0.8, timeout_s=20)

    assert len(session.stats.barge_ins) == 1
    detected = session.stats.barge_ins[0]
    stop = await leg.wait_for("StopAudio")
    heard_greeting = [f for f in leg.heard() if f.start < stop.at]
    assert heard_greeting[-1].start + 0.020 - detected <= 0.100  # the caller stops hearing it within 100 ms
    assert 0 <= stop.at - detected <= 0.100
    answers = [t for t in session.turns if t.role == "assistant"]
    assert answers[0].interrupted  # the greeting, cut short
    assert "open from five to eleven" in answers[-1].text.lower()  # the new question is answered
    await stack.emulator.caller_hangs_up(call)


async def test_outbound_call_placed_through_the_api(stack: LocalStack) -> None:
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{stack.gateway_url}/api/calls",
            params={"code": stack.function_key},
            json={"target": "+14255550188", "profile": "restaurant"},
        )
        body = await response.json()
        unauthorised = await http.post(f"{stack.gateway_url}/api/calls", json={"target": "+14255550188"})
    assert response.status == 202, body
    assert unauthorised.status == 401  # the function key is enforced by the gateway as by Azure

    call = await stack.emulator.next_outbound_call()
    assert call.call_connection_id == body["callConnectionId"]
    assert call.callee["phoneNumber"]["value"] == "+14255550188"
    async with asyncio.timeout(15):
        await call.media_ready.wait()
    assert call.leg is not None
    await converse(call.leg, (LINES["06_goodbye.wav"],))  # hears the greeting, says goodbye
    async with asyncio.timeout(30):
        await call.ended.wait()
    assert call.end_reason == "hung_up_by_app"
    assert call.callback_types()[-1] == "CallDisconnected"
    create = next(r for r in stack.emulator.rest.requests if r.operation == "create")
    assert create.body["sourceCallerIdNumber"] == {"value": stack.number}


async def test_unreachable_media_host_fails_streaming_and_the_function_hangs_up(stack: LocalStack) -> None:
    os.environ["MEDIA_HOST_URL"] = "ws://127.0.0.1:9"  # nothing listens there (discard port)
    await functions_runtime.reset()
    call = await stack.emulator.incoming_call(stack.incoming_call_url)
    async with asyncio.timeout(15):
        await call.ended.wait()

    assert call.leg is None
    assert call.callback_types() == ["CallConnected", "MediaStreamingFailed", "CallDisconnected"]
    assert all(c.status == 200 for c in call.callbacks)
    assert call.end_reason == "hung_up_by_app"  # the caller is not left in silence
    assert [r.operation for r in stack.emulator.rest.requests] == ["answer", "terminate"]


async def test_redelivered_incoming_call_is_answered_once(stack: LocalStack) -> None:
    call = await stack.emulator.incoming_call(stack.incoming_call_url)
    async with asyncio.timeout(10):
        await call.media_ready.wait()
    assert await stack.emulator.redeliver(call, stack.incoming_call_url) == 200  # same instance
    await functions_runtime.reset()  # another instance: nothing remembered in process
    assert await stack.emulator.redeliver(call, stack.incoming_call_url, delivery_count=2) == 200
    await asyncio.sleep(0.3)

    answers = [r for r in stack.emulator.rest.requests if r.operation == "answer"]
    assert [a.replayed for a in answers] == [False, True]  # ACS deduplicated the second instance's answer
    assert len(stack.emulator.rest.calls) == 1
    assert len([c for c in stack.emulator.calls if c.leg is not None]) == 1
    await stack.emulator.caller_hangs_up(call)
