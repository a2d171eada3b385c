"""Phone manners over real sockets: the ACS caller fixture on one side, the scripted model on the other
(which answers every `response.create` with a short spoken answer, as a model would).

A silent caller is reprompted and then said goodbye to; speech or a key resets that clock; keys reach
the model as one input and never a log line; a slow tool draws one filler line; a barge-in cancels a
running tool; the call's time limit is announced and ends with a goodbye; a profile may wait for the
caller to speak first, and speaks the manners' lines in its language.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.profiles import ProfileError, parse_profile
from common.telemetry import CallIds
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from media_host.call_events import AssistantPrompted, CallEnded, CallEvent, KeypadEntry, ToolUsed
from media_host.phrases import PHRASES
from media_host.tools import ToolContext, ToolResult
from tests.conftest import StartMediaHost
from tests.fake_realtime import FakeRealtime, ModelSocket
from tests.signals import tone

EN = PHRASES["en"]
ANSWER_S = 0.2  # every scripted answer: 200 ms of audio


@dataclass
class Recorder:
    events: list[CallEvent] = field(default_factory=list)

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        self.events.append(event)

    def prompted(self) -> list[tuple[str, int]]:
        return [(e.why, e.count) for e in self.events if isinstance(e, AssistantPrompted)]

    def ended(self) -> CallEnded:
        return next(e for e in self.events if isinstance(e, CallEnded))


def instructions_of(event: dict[str, Any]) -> str:
    return str(event.get("response", {}).get("instructions", ""))


async def answer_every_request(socket: ModelSocket, *, skip: int = 0) -> None:
    """Answers each response.create (after the first `skip`) with ANSWER_S of speech, as a model would."""
    answered = skip
    n = 0
    while True:
        await socket.wait_for("response.create", count=answered + 1, timeout=3600)
        answered += 1
        n += 1
        await socket.speak(f"resp_auto_{n}", f"item_auto_{n}", tone(500, ANSWER_S, 24_000))


async def call_until_hung_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn, **env: str
) -> tuple[ModelSocket, Recorder, MediaLeg]:
    """A call the scripted model answers throughout, until the media host hangs it up."""
    host = await start_media_host(**env)
    recorder = Recorder()
    host.state.observers.append(recorder)
    leg = await host.call()
    socket, answering = await start_answering(model)
    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id, timeout=10)
    await host.wait_calls(0)
    await stop(answering)
    await leg.wait_closed()
    return socket, recorder, leg


async def start_answering(model: FakeRealtime, *, skip: int = 0) -> tuple[ModelSocket, asyncio.Task[None]]:
    socket = await model.socket()
    await socket.wait_for("session.update")
    return socket, asyncio.create_task(answer_every_request(socket, skip=skip))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- no input ---------------------------------------------------------------------------------------


async def test_a_silent_caller_gets_two_reprompts_then_a_goodbye_and_a_hang_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    socket, recorder, leg = await call_until_hung_up(
        start_media_host, model, acs, NO_INPUT_SECONDS="0.4", NO_INPUT_REPROMPTS="2"
    )

    creates = socket.of_type("response.create")
    assert [instructions_of(e).endswith(EN.reprompt) for e in creates] == [False, True, True, False]
    assert instructions_of(creates[-1]).endswith(EN.no_input_goodbye)  # the persona stays, the line is added
    assert recorder.prompted() == [("no_input", 1), ("no_input", 2), ("no_input_goodbye", 1)]
    assert recorder.ended().why == "no_input" and recorder.ended().who == "media_host"
    # the clock counts from the end of playout: the greeting's ANSWER_S, then the 0.4 s of silence
    times = [at for at, e in socket.events if e["type"] == "response.create"]
    assert times[1] - times[0] >= ANSWER_S + 0.4
    # the goodbye was heard before the hang-up: all of its audio reached the caller
    assert len(leg.of_kind("AudioData")) >= 4 * int(ANSWER_S / 0.02)


@pytest.mark.parametrize("how", ["speech", "key"])
async def test_speech_or_a_key_resets_the_no_input_count(
    how: str, start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(NO_INPUT_SECONDS="0.4", NO_INPUT_REPROMPTS="1", DTMF_GAP_MS="200")
    recorder = Recorder()
    host.state.observers.append(recorder)
    leg = await host.call()
    socket, answering = await start_answering(model)
    await socket.wait_for("response.create", count=2, timeout=5)  # the greeting, then reprompt 1

    await asyncio.sleep(ANSWER_S + 0.1)  # the reprompt has been answered and heard
    if how == "speech":
        await socket.speech_started()
        await socket.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 500, "item_id": "i"})
        socket.events.append((time.monotonic(), {"type": "response.create"}))  # server VAD answers itself
        socket._arrived.set()
    else:
        await leg.press("5")
    # had nothing reset the count, this silence would be the second and end the call
    await socket.wait_for("response.create", count=4, timeout=5)

    assert recorder.prompted() == [("no_input", 1), ("no_input", 1)]
    assert not [r for r in acs.requests if r.operation == "terminate"]
    await stop(answering)
    await leg.close()


# -- the keypad -------------------------------------------------------------------------------------


async def test_keys_reach_the_model_as_one_input_and_never_a_log_line(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    host = await start_media_host(DTMF_GAP_MS="300", NO_INPUT_SECONDS="0")
    recorder = Recorder()
    host.state.observers.append(recorder)
    leg = await host.call()
    socket = await model.socket()
    await socket.wait_for("session.update")
    for key in "*7*#":  # a terminator ends the entry at once
        await leg.press(key)
    first = await socket.wait_for("conversation.item.create", timeout=5)
    for key in "**":  # a pause ends it too
        await leg.press(key)
    second = await socket.wait_for("conversation.item.create", count=2, timeout=5)

    texts = [item["item"]["content"][0]["text"] for item in (first, second)]
    assert texts == [EN.keys.format(keys="* 7 * #"), EN.keys.format(keys="* *")]
    assert first["item"]["role"] == "user"
    assert socket.types().count("response.create") == 3  # the greeting, and an answer to each entry
    await leg.close()
    await host.wait_calls(0)

    assert [e.keys for e in recorder.events if isinstance(e, KeypadEntry)] == [4, 2]
    assert recorder.ended().counts["dtmf_tones"] == 6
    lines = [r.getMessage() for r in caplog.records]
    assert [line for line in lines if "*" in line or "#" in line] == []  # no digit in any line or envelope
    assert any('"event": "KeypadEntry"' in line and '"keys": "4"' in line for line in lines)


async def test_acs_sends_keys_only_to_a_stream_that_asked_for_them() -> None:
    quiet = MediaLeg(dtmf_enabled=False)  # enableDtmfTones was not set (the functions' tests check we set it)
    assert await quiet.press("1") is False


# -- slow tools -------------------------------------------------------------------------------------


class SlowLookup:
    name = "look_up_booking"
    description = "Look up a booking."
    parameters: dict[str, Any] = {"type": "object", "properties": {}}

    def __init__(self, seconds: float, *, ignores_cancel: bool = False) -> None:
        self.seconds = seconds
        self.ignores_cancel = ignores_cancel
        self.finished = 0
        self.cancelled = 0

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        try:
            if self.ignores_cancel:  # a tool that finishes whatever happens: its result must be ignored
                await asyncio.shield(asyncio.sleep(self.seconds))
            else:
                await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            if not self.ignores_cancel:
                raise
            await asyncio.sleep(self.seconds)
        self.finished += 1
        return ToolResult(json.dumps({"booking": "B-1"}))


async def test_a_slow_tool_draws_one_filler_per_call_and_then_its_answer(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    lookup = SlowLookup(0.8)
    host = await start_media_host(tools=[lookup], TOOL_FILLER_MS="250", NO_INPUT_SECONDS="0")
    recorder = Recorder()
    host.state.observers.append(recorder)
    leg = await host.call()
    socket, answering = await start_answering(model)
    for n in (1, 2):  # two slow lookups in one call: "one moment" once
        await socket.function_call(f"resp_fc_{n}", "look_up_booking", {}, f"call_{n}")
        await socket.response_done(f"resp_fc_{n}")
        await socket.wait_for("conversation.item.create", count=n, timeout=5)
    await socket.wait_for("response.create", count=4, timeout=5)  # greeting, filler, two answers

    creates = socket.of_type("response.create")
    assert [instructions_of(e).endswith(EN.filler) for e in creates] == [False, True, False, False]
    outputs = [json.loads(e["item"]["output"]) for e in socket.of_type("conversation.item.create")]
    assert outputs == [{"booking": "B-1"}, {"booking": "B-1"}]
    # the answer follows without a gap: asked for the moment the result is in, right behind the filler
    at = {id(e): t for t, e in socket.events}
    first_output = socket.of_type("conversation.item.create")[0]
    assert at[id(creates[1])] < at[id(first_output)] <= at[id(creates[2])] < at[id(first_output)] + 0.2
    assert recorder.prompted() == [("tool_filler", 1)]
    await stop(answering)
    await leg.close()


@pytest.mark.parametrize("ignores_cancel", [False, True])
async def test_a_barge_in_cancels_a_running_tool_and_its_late_result_is_ignored(
    ignores_cancel: bool, start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    lookup = SlowLookup(0.5, ignores_cancel=ignores_cancel)
    host = await start_media_host(tools=[lookup], TOOL_FILLER_MS="0", NO_INPUT_SECONDS="0")
    recorder = Recorder()
    host.state.observers.append(recorder)
    leg = await host.call()
    socket = await model.socket()
    await socket.wait_for("session.update")
    await socket.function_call("resp_fc", "look_up_booking", {}, "call_1")
    await socket.response_done("resp_fc")
    await asyncio.sleep(0.1)
    await socket.speech_started()  # the caller moved on

    output = await socket.wait_for("conversation.item.create", timeout=5)
    assert output["item"]["call_id"] == "call_1" and "cancelled" in output["item"]["output"]
    await asyncio.sleep(1.2)  # long enough for a tool that ignores cancellation to finish
    assert lookup.cancelled == 1 and lookup.finished == (1 if ignores_cancel else 0)
    assert len(socket.of_type("conversation.item.create")) == 1  # the late result is not acted upon
    assert socket.types().count("response.create") == 1  # the greeting only: the caller's words come next
    assert [(e.name, e.outcome) for e in recorder.events if isinstance(e, ToolUsed)] == [
        ("look_up_booking", "cancelled")
    ]
    await leg.close()


# -- the call's length ------------------------------------------------------------------------------


async def test_the_time_limit_is_announced_then_ends_with_a_goodbye(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    socket, recorder, _ = await call_until_hung_up(
        start_media_host,
        model,
        acs,
        MAX_CALL_SECONDS="1.5",
        MAX_CALL_WARNING_SECONDS="1",
        NO_INPUT_SECONDS="0",
    )

    creates = socket.of_type("response.create")
    assert instructions_of(creates[1]).endswith(EN.ending_soon)
    assert instructions_of(creates[2]).endswith(EN.time_up_goodbye)
    assert recorder.prompted() == [("ending_soon", 1), ("time_up_goodbye", 1)]
    assert recorder.ended().why == "max_call_seconds"
    at = [t for t, e in socket.events if e["type"] == "response.create"]
    assert 0.3 < at[1] - at[0] < 0.9 and 1.3 < at[2] - at[0] < 2.0  # at 0.5 s and 1.5 s into the call


async def test_the_time_limit_ends_the_call_even_if_the_model_never_says_goodbye(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(MAX_CALL_SECONDS="1", NO_INPUT_SECONDS="0")
    leg = await host.call()
    started = time.monotonic()
    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id, timeout=25)
    assert time.monotonic() - started < 20  # the goodbye's wait is bounded
    await leg.wait_closed()


# -- profiles: greeting and language ------------------------------------------------------------------


async def test_a_profile_that_waits_for_the_caller_and_speaks_japanese(
    start_media_host: StartMediaHost, model: FakeRealtime, tmp_path: Path
) -> None:
    (tmp_path / "callback-ja.txt").write_text(
        "---\nlanguage: ja\ngreeting: wait\n---\nあなたはレストランの予約係です。\n", encoding="utf-8"
    )
    host = await start_media_host(AOAI_PROFILES_DIR=str(tmp_path), NO_INPUT_SECONDS="0.4")
    leg = await host.call(query="profile=callback-ja")
    socket = await model.socket()
    session = (await socket.wait_for("session.update"))["session"]
    assert session["instructions"] == "あなたはレストランの予約係です。"  # the header is not the model's

    await asyncio.sleep(0.2)
    assert socket.types().count("response.create") == 0  # no greeting: the callee says hello first
    reprompt = await socket.wait_for("response.create", timeout=5)  # a silent callee is asked after 0.4 s
    assert instructions_of(reprompt).endswith(PHRASES["ja"].reprompt)
    await leg.close()


def test_profile_headers_are_read_and_checked() -> None:
    assert parse_profile("Be brief.\n") == parse_profile("---\n---\nBe brief.")
    profile = parse_profile("---\r\nlanguage: ja\r\ngreeting: wait\r\n---\r\nBe brief.\r\n")
    assert (profile.language, profile.greeting, profile.instructions) == ("ja", "wait", "Be brief.")
    for header, problem in (
        ("language: fr", "language 'fr' is not one of en, ja"),
        ("greeting: later", "greeting 'later' is not one of first, wait"),
        ("greting: wait", "header line 'greting: wait' is not 'language: ...' or 'greeting: ...'"),
    ):
        with pytest.raises(ProfileError, match=problem):
            parse_profile(f"---\n{header}\n---\nBe brief.", "x.txt")


def test_the_shipped_japanese_profile_is_japanese() -> None:
    from common.profiles import load_profiles

    profiles = load_profiles(Path(__file__).resolve().parent.parent / "prompts")
    assert profiles["restaurant-ja"].language == "ja"
    assert profiles["restaurant"].language == "en"


# -- long calls: the model session is rolled over --------------------------------------------------


async def test_a_long_call_rolls_over_to_a_fresh_session_with_the_conversation_and_no_audio_lost(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host = await start_media_host(MODEL_SESSION_MAX_SECONDS="3", NO_INPUT_SECONDS="0")
    leg = await host.call()
    first = await model.socket(0)
    await first.wait_for("session.update")
    await first.caller_said("item_c1", "A table for two, please.")
    await first.speak("resp_1", "item_a1", tone(500, 0.2, 24_000))
    await first.assistant_said("resp_1", "item_a1", "For which day?")
    speech = tone(300, 4.0, 24_000)  # the caller's line stays live, in real time, across the rollover
    streaming = asyncio.create_task(leg.stream(speech, realtime=True))

    second = await model.socket(1, timeout=6)
    instructions = (await second.wait_for("session.update"))["session"]["instructions"]
    await streaming
    items = [e["item"] for e in second.of_type("conversation.item.create")]
    await first.ended.wait()  # the host closed the old session itself
    async with asyncio.timeout(5):
        while len(first.appended_audio() + second.appended_audio()) < len(speech):
            await asyncio.sleep(0.02)

    assert "continues from an earlier session" in instructions and "interrupted" not in instructions
    assert [(i["role"], i["content"][0]["text"]) for i in items] == [
        ("user", "A table for two, please."),
        ("assistant", "For which day?"),
    ]
    assert first.appended_audio() + second.appended_audio() == speech  # every frame, in order, once
    assert first.appended_audio() and second.appended_audio()  # and the switch was mid-stream
    assert "response.create" not in second.types()  # a quiet moment: nothing to say, nobody noticed
    (call,) = host.state.calls
    assert (call.model.rollovers, call.model.reconnects) == (1, 0)
    rolled = [r.getMessage() for r in caplog.records if '"event": "ModelSessionRolledOver"' in r.getMessage()]
    assert len(rolled) == 1 and '"turns": "2"' in rolled[0]
    await leg.close()
