"""Whole calls through the real SDKs and real sockets: what a caller and an operator would notice."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import aiohttp
import pytest

from emulators.acs.emulator import EmulatedCall
from emulators.caller import at_rate, converse, script, wait_for_assistant_turn
from functions import runtime as functions_runtime
from local_stack.records import CallRecord
from local_stack.stack import LocalStack
from tests.e2e.conftest import run_demo

LINES = {line.file: line for line in script()}


async def record_of(stack: LocalStack, call: EmulatedCall) -> CallRecord:
    async with asyncio.timeout(10):
        while (record := stack.record(call.call_connection_id or "")) is None:
            await asyncio.sleep(0.02)
    return record


def test_demo_books_a_table_and_the_assistant_hangs_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` itself: the exit code, the transcript and the stereo recording it leaves."""
    call = run_demo(tmp_path, "acs", monkeypatch)

    assert call.summary["hang_up"] == "hung_up_by_app"
    assert call.summary["media_host_end_reason"] == "assistant_ended"
    assert call.summary["tools"] == {"end_call": 1}
    assert call.summary["callbacks"] == ["CallConnected", "MediaStreamingStarted", "CallDisconnected"]
    assert "table for two on friday at seven thirty is booked" in call.said("assistant")
    assert "book a table" in call.said("caller")
    assert call.rate == 24_000
    assert call.sound_seconds(0) > 5 and call.sound_seconds(1) > 10  # both sides are really in the recording


async def test_barge_in_stops_the_assistant_and_it_answers_the_new_question(stack: LocalStack) -> None:
    call = await stack.emulator.incoming_call(stack.incoming_call_url)
    async with asyncio.timeout(10):
        await call.media_ready.wait()
    leg = call.leg
    assert leg is not None
    record = await record_of(stack, call)
    async with asyncio.timeout(10):
        while not leg.heard():
            await asyncio.sleep(0.02)
    await asyncio.sleep(0.8)  # well into the greeting (about 4 s long)

    question = LINES["04_opening_hours.wav"]
    await leg.say(at_rate(question.pcm, leg.sample_rate))  # talks over the greeting
    await wait_for_assistant_turn(leg, since=time.monotonic(), quiet_s=0.8, timeout_s=20)

    assert len(record.barge_ins) == 1
    detected = record.barge_ins[0]
    stop = await leg.wait_for("StopAudio")
    heard_greeting = [f for f in leg.heard() if f.start < stop.at]
    assert heard_greeting[-1].start + 0.020 - detected <= 0.100  # the caller stops hearing it within 100 ms
    assert 0 <= stop.at - detected <= 0.100
    answers = [t for t in record.turns if t.role == "assistant"]
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
