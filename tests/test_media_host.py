"""The media host over real sockets: an ACS media leg on one side, a scripted model on the other."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer, unsigned_token
from media_host.audio import StreamResampler
from media_host.settings import DEFAULT_INSTRUCTIONS
from tests.conftest import AUDIENCE, StartMediaHost
from tests.fake_realtime import FakeRealtime
from tests.signals import constant, dominant_frequency, samples, snr_against_sine, tone

FRAME_24K = 960
ROOT = Path(__file__).resolve().parent.parent


async def test_session_opens_with_ga_config_and_greeting(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(AOAI_VOICE="coral", AOAI_INSTRUCTIONS="You book tables.")
    leg = await host.call()
    socket = await model.socket()
    await socket.wait_for("response.create")

    assert socket.query == {"model": "gpt-realtime"}
    assert socket.headers["api-key"] == "test-model-key"
    assert socket.types()[:2] == ["session.update", "response.create"]  # the assistant greets first
    session = socket.of_type("session.update")[0]["session"]
    assert session["type"] == "realtime"
    assert session["instructions"] == "You book tables."
    assert session["audio"]["output"]["voice"] == "coral"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"]["model"] == "whisper-1"
    assert [t["name"] for t in session["tools"]] == ["end_call"]  # no TRANSFER_TARGET, no transfer tool
    await leg.close()


async def test_transport_url_profile_picks_the_instructions(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    booking, unknown = await host.call(query="profile=restaurant"), await host.call(query="profile=nope")
    sessions = [await (await model.socket(i)).wait_for("session.update") for i in (0, 1)]
    by_profile = {session["session"]["instructions"] for session in sessions}
    restaurant = (ROOT / "prompts" / "restaurant.txt").read_text(encoding="utf-8").strip()
    assert by_profile == {restaurant, DEFAULT_INSTRUCTIONS}
    await booking.close()
    await unknown.close()


async def test_transport_url_voice_picks_the_call_voice(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    host = await start_media_host(AOAI_VOICE="ash")
    legs = [await host.call(query=query) for query in ("voice=coral&profile=restaurant", "voice=nova", "")]
    sessions = [await (await model.socket(i)).wait_for("session.update") for i in range(3)]
    voices = sorted(session["session"]["audio"]["output"]["voice"] for session in sessions)
    assert voices == ["ash", "ash", "coral"]  # an unknown voice is the default, as an unknown profile is
    assert [r.getMessage() for r in caplog.records if "unknown voice" in r.getMessage()] == [
        "unknown voice 'nova'; using the default voice ash"
    ]
    for leg in legs:
        await leg.close()


async def test_24k_caller_audio_reaches_model_byte_exact(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    speech = tone(300, 0.5, 24_000) + tone(1200, 0.5, 24_000)
    await leg.stream(speech, realtime=False)
    socket = await model.socket()
    received = await socket.wait_audio_bytes(len(speech))

    assert received == speech
    appends = socket.of_type("input_audio_buffer.append")
    assert all(len(base64.b64decode(a["audio"])) == FRAME_24K for a in appends)
    await leg.close()


async def test_caller_audio_reaches_the_model_in_40ms_appends_by_default(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_MODEL_APPEND_MS="40")  # the product's default (conftest pins 20)
    leg = await host.call()
    speech = tone(300, 0.5, 24_000)  # 25 frames: the last waits for the caller's next
    await leg.stream(speech, realtime=False)
    socket = await model.socket()
    assert await socket.wait_audio_bytes(len(speech) - FRAME_24K) == speech[:-FRAME_24K]
    await leg.stream(bytes(FRAME_24K), realtime=False)  # ACS streams on, even in silence

    assert await socket.wait_audio_bytes(len(speech) + FRAME_24K) == speech + bytes(FRAME_24K)
    appends = socket.of_type("input_audio_buffer.append")
    assert [len(base64.b64decode(a["audio"])) for a in appends] == [2 * FRAME_24K] * 13
    await leg.close()


async def test_model_audio_is_cut_into_exact_20ms_frames(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="1000")  # a big lead: this test is about framing
    leg = await host.call()
    socket = await model.socket()
    answer = tone(500, 0.51, 24_000)  # 25.5 frames, in odd-sized deltas
    await socket.speak("resp_1", "item_1", answer, chunk=4801 * 2)
    await leg.wait_for("AudioData", count=26)

    frames = [r.pcm for r in leg.of_kind("AudioData")]
    assert all(len(f) == FRAME_24K for f in frames)
    played = b"".join(frames)
    assert played[: len(answer)] == answer
    assert played[len(answer) :] == bytes(len(played) - len(answer))  # only the last frame is padded
    await leg.close()


async def test_16k_call_round_trip_keeps_tone_clean(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call(sample_rate=16_000)
    caller = tone(440, 1.0, 16_000)
    await leg.stream(caller, realtime=False)
    socket = await model.socket()
    to_model = await socket.wait_audio_bytes(int(0.9 * 48_000))

    # soxr gives 16 -> 24 kHz in bursts (nothing, then 30 ms): each goes whole, not re-cut into frames
    resampler = StreamResampler(16_000, 24_000, "HQ")
    bursts = sum(1 for i in range(0, len(caller), 640) if resampler.process(caller[i : i + 640]))
    assert len(socket.of_type("input_audio_buffer.append")) <= bursts
    assert dominant_frequency(to_model, 24_000) == pytest.approx(440, abs=2)
    assert snr_against_sine(to_model, 440, 24_000, edge_seconds=0.1) > 60

    await socket.speak("resp_1", "item_1", tone(440, 1.0, 24_000), chunk=9600)
    await leg.wait_for("AudioData", count=50, timeout=5)
    frames = [r.pcm for r in leg.of_kind("AudioData")]
    assert all(len(f) == 640 for f in frames)
    to_caller = b"".join(frames)
    assert dominant_frequency(to_caller, 16_000) == pytest.approx(440, abs=2)
    assert snr_against_sine(to_caller, 440, 16_000, edge_seconds=0.1) > 60
    # no clicks: the largest step across a frame join is no bigger than the sine's own steepest step
    x = samples(to_caller)[: 48 * 320]
    joins = np.abs(np.diff(x))[319::320][1:-2]
    steepest = 0.5 * 32767 * 2 * np.pi * 440 / 16_000
    assert joins.max() <= steepest * 1.05
    await leg.close()


async def test_assistant_audio_is_paced_in_real_time(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="60")
    leg = await host.call()
    socket = await model.socket()
    await socket.speak("resp_1", "item_1", tone(300, 1.0, 24_000), chunk=24_000)  # all of it at once
    last = await leg.wait_for("AudioData", count=50, timeout=5)
    first = leg.of_kind("AudioData")[0]

    arrivals = np.array([r.at for r in leg.of_kind("AudioData")])
    gaps = np.diff(arrivals[3:])  # after the 60 ms lead the frames leave one per 20 ms
    assert last.at - first.at >= 0.9  # a burst would arrive in a few ms
    assert 0.015 <= float(np.median(gaps)) <= 0.030
    assert host.state.calls and next(iter(host.state.calls)).playback.stats.underruns == 0
    await leg.close()


async def test_barge_in_stops_audio_cancels_and_truncates(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="60")
    leg = await host.call()
    socket = await model.socket()
    interrupted = constant(1000, 3.0, 24_000)
    await socket.speak("resp_A", "item_A", interrupted[:48_000], done=False)  # 1 s now, more to come
    await leg.wait_for("AudioData", count=10)

    await socket.speech_started()
    stop = await leg.wait_for("StopAudio")
    await socket.audio("resp_A", "item_A", interrupted[48_000:])  # late deltas of the interrupted response
    await socket.audio_done("resp_A", "item_A")
    await socket.response_done("resp_A", status="cancelled")
    await socket.speak("resp_B", "item_B", constant(-2000, 0.2, 24_000))
    await leg.wait_for("AudioData", count=10 + 10, timeout=5)
    cancel = await socket.wait_for("response.cancel")
    truncate = await socket.wait_for("conversation.item.truncate")

    before = [r for r in leg.of_kind("AudioData") if r.at < stop.at]
    after = [r for r in leg.of_kind("AudioData") if r.at > stop.at]
    assert all(set(samples(r.pcm)) == {1000} for r in before)
    assert after and all(set(samples(r.pcm)) <= {-2000, 0} for r in after)  # nothing of A after StopAudio
    assert cancel["response_id"] == "resp_A"
    assert truncate["item_id"] == "item_A" and truncate["content_index"] == 0
    # what the caller had heard, not what was sent: ACS still held the playback lead when it stopped
    heard_ms = 20 * len([f for f in leg.heard() if f.start < stop.at and set(samples(f.pcm)) == {1000}])
    assert truncate["audio_end_ms"] < len(before) * 20
    assert abs(truncate["audio_end_ms"] - heard_ms) <= 30, (truncate["audio_end_ms"], heard_ms)
    assert len(next(iter(host.state.calls)).stats.barge_ins) == 1
    await leg.close()


async def test_chunked_playback_sends_fewer_messages_and_a_barge_in_still_cuts_at_once(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    """60 ms of assistant audio per message (the default): a third of the messages and wake-ups, the
    same audio byte for byte, and StopAudio still leaves the caller nothing more of the answer."""
    host = await start_media_host(MEDIA_PLAYBACK_CHUNK_MS="60", MEDIA_PLAYBACK_LEAD_MS="60")
    leg = await host.call()
    socket = await model.socket()
    answer = constant(1000, 3.0, 24_000)
    await socket.speak("resp_A", "item_A", answer[:48_000], done=False)  # 1 s of it, more to come
    await leg.wait_for("AudioData", count=8)
    messages = leg.of_kind("AudioData")
    assert {len(m.pcm) for m in messages} == {3 * 960}  # 60 ms each at 24 kHz

    await socket.speech_started()
    stop = await leg.wait_for("StopAudio")
    await socket.audio("resp_A", "item_A", answer[48_000:])  # late deltas of the interrupted answer
    await socket.response_done("resp_A", status="cancelled")
    truncate = await socket.wait_for("conversation.item.truncate")

    sent = b"".join(m.pcm for m in leg.of_kind("AudioData") if m.at < stop.at)
    assert sent == answer[: len(sent)]  # byte-exact, in order
    assert not [m for m in leg.of_kind("AudioData") if m.at > stop.at]  # nothing of A after StopAudio
    heard = [f for f in leg.heard() if f.start < stop.at]
    assert heard and all(f.start < stop.at for f in leg.heard())  # ACS dropped what it still held
    heard_ms = 20 * len(heard)
    sent_ms = len(sent) // 48
    assert sent_ms - heard_ms <= 60 + 60  # at most the lead and one chunk were still to play
    assert abs(truncate["audio_end_ms"] - heard_ms) <= 30, (truncate["audio_end_ms"], heard_ms, sent_ms)
    await leg.close()


async def test_speech_while_assistant_silent_is_not_a_barge_in(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.speak("resp_1", "item_1", tone(300, 0.1, 24_000))
    await leg.wait_for("AudioData", count=5)
    await asyncio.sleep(0.1)  # played out
    await socket.speech_started()
    await socket.send({"type": "input_audio_buffer.speech_stopped", "item_id": "x", "audio_end_ms": 900})
    await asyncio.sleep(0.1)

    assert not leg.of_kind("StopAudio")
    assert not socket.of_type("response.cancel") and not socket.of_type("conversation.item.truncate")
    await leg.close()


async def test_end_call_says_goodbye_then_hangs_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    goodbye = tone(400, 0.4, 24_000)
    await socket.response_created("resp_bye")
    await socket.audio("resp_bye", "item_bye", goodbye)
    await socket.audio_done("resp_bye", "item_bye")
    await socket.function_call("resp_bye", "end_call", {"reason": "booking done"}, call_id="call_1")
    await socket.response_done("resp_bye")

    terminate = await acs.wait_for("terminate", call_connection_id=leg.call_connection_id)
    await leg.wait_closed()
    output = await socket.wait_for("conversation.item.create")
    frames = leg.of_kind("AudioData")
    assert b"".join(f.pcm for f in frames)[: len(goodbye)] == goodbye
    assert (
        terminate.method == "POST" and terminate.at > frames[-1].at
    )  # the goodbye went out before the hang-up
    assert output["item"] == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '{"status": "ended"}',
    }
    assert socket.types().count("response.create") == 1  # only the greeting: no answer to the tool output


async def test_transfer_waits_for_the_announcement_then_transfers(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(TRANSFER_TARGET="+15551230000")
    leg = await host.call()
    socket = await model.socket()
    session = (await socket.wait_for("session.update"))["session"]
    assert [t["name"] for t in session["tools"]] == ["end_call", "transfer_to_agent"]

    announcement = tone(500, 0.5, 24_000)  # "I'm transferring you to a colleague"
    await socket.response_created("resp_t")
    await socket.audio("resp_t", "item_t", announcement)
    await socket.audio_done("resp_t", "item_t")
    await socket.function_call(
        "resp_t", "transfer_to_agent", {"summary": "wants a manager"}, call_id="call_t"
    )
    await socket.response_done("resp_t")
    transfer = await acs.wait_for("transfer", call_connection_id=leg.call_connection_id)
    output = await socket.wait_for("conversation.item.create")

    frames = leg.of_kind("AudioData")
    assert b"".join(f.pcm for f in frames)[: len(announcement)] == announcement
    assert transfer.at > frames[-1].at  # the caller heard the announcement before ACS took the call
    assert transfer.body["targetParticipant"]["phoneNumber"]["value"] == "+15551230000"
    assert json.loads(output["item"]["output"]) == {"status": "transfer_started"}
    assert next(iter(host.state.calls)).end_reason == "transferred"
    assert not leg.closed  # ACS, not us, ends our leg once the transfer is accepted
    await leg.close()


async def test_tool_failure_is_told_to_the_model(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(TRANSFER_TARGET="+15551230000")
    leg = await host.call()
    socket = await model.socket()
    acs.fail_next("transfer", 403, "Transfer target not allowed")

    await socket.function_call("resp_t", "transfer_to_agent", {}, call_id="call_t")
    await socket.response_done("resp_t")
    output = await socket.wait_for("conversation.item.create")
    await socket.wait_for("response.create", count=2)  # asked to speak about it
    await socket.function_call("resp_u", "book_flight", {}, call_id="call_u")
    unknown = await socket.wait_for("conversation.item.create", count=2)

    assert "Transfer target not allowed" in json.loads(output["item"]["output"])["error"]
    assert "unknown tool 'book_flight'" in json.loads(unknown["item"]["output"])["error"]
    assert not leg.closed  # the call goes on
    await leg.close()


async def test_deployment_tools_plug_in(start_media_host: StartMediaHost, model: FakeRealtime) -> None:
    class OpeningHours:
        name = "opening_hours"
        description = "When the restaurant is open."
        parameters: dict[str, object] = {"type": "object", "properties": {"day": {"type": "string"}}}

        async def run(self, args: dict[str, object], ctx: object) -> object:
            from media_host.tools import ToolResult

            return ToolResult(json.dumps({"day": args["day"], "hours": "17:00-23:00"}))

    host = await start_media_host(tools=[OpeningHours()])
    leg = await host.call()
    socket = await model.socket()
    session = (await socket.wait_for("session.update"))["session"]
    await socket.function_call("resp_h", "opening_hours", {"day": "friday"}, call_id="c1")
    await socket.response_done("resp_h")
    output = await socket.wait_for("conversation.item.create")

    assert "opening_hours" in [t["name"] for t in session["tools"]]
    assert json.loads(output["item"]["output"]) == {"day": "friday", "hours": "17:00-23:00"}
    await socket.wait_for("response.create", count=2)
    await leg.close()


async def test_model_socket_lost_mid_call_is_restored(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    first = await model.socket(0)
    await first.wait_for("response.create")
    await first.caller_said("u1", "A table for two tonight, please.")
    await first.wait_for("session.update")
    await asyncio.sleep(0.05)
    await first.drop()
    speech = tone(700, 0.4, 24_000)
    await leg.stream(speech, realtime=False)  # spoken while the model is away
    second = await model.socket(1)
    received = await second.wait_audio_bytes(len(speech))

    restored = second.of_type("session.update")[0]["session"]["instructions"]
    assert "do not greet again" in restored
    assert "A table for two" not in restored  # what the caller said is never made an instruction...
    items = [e["item"] for e in second.of_type("conversation.item.create")]
    assert items == [  # ...it comes back as the caller's turn
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "A table for two tonight, please."}],
        }
    ]
    assert "response.create" not in second.types()  # nothing was being said when the socket dropped
    assert received == speech  # held while reconnecting, none lost
    assert not leg.closed
    assert next(iter(host.state.calls)).model.reconnects == 1
    await leg.close()


async def test_rejected_session_fails_the_call_clearly(
    start_media_host: StartMediaHost,
    model: FakeRealtime,
    acs: CallAutomationStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model.reject_session = "invalid_value"
    host = await start_media_host()
    leg = await host.call()
    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id)
    await leg.wait_closed()
    socket = await model.socket()

    assert "response.create" not in socket.types()  # no greeting on the model's defaults
    assert "model rejected the session: invalid_value: Invalid value: 'robot'." in caplog.text
    assert model.upgrade_attempts == 1  # a configuration error is not retried


async def test_model_retries_at_start_then_connects(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    model.refuse_next = 2
    host = await start_media_host(MODEL_CONNECT_ATTEMPTS="4", MODEL_CONNECT_BACKOFF_SECONDS="0.1")
    leg = await host.call()
    speech = tone(250, 0.3, 24_000)
    await leg.stream(speech, realtime=False)  # arrives before the model socket is ready
    socket = await model.socket()

    assert await socket.wait_audio_bytes(len(speech)) == speech
    assert model.upgrade_attempts == 3
    await leg.close()


async def test_model_unreachable_hangs_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    model.refuse_next = 100
    host = await start_media_host(MODEL_CONNECT_ATTEMPTS="3")
    leg = await host.call()

    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id)
    await leg.wait_closed()
    assert model.upgrade_attempts == 3
    await host.wait_calls(0)


async def test_model_that_never_answers_the_upgrade_is_given_up_on(
    start_media_host: StartMediaHost, acs: CallAutomationStandIn
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accepts the connection, reads the upgrade, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        host = await start_media_host(
            AZURE_OPENAI_ENDPOINT=f"http://127.0.0.1:{port}",
            MODEL_CONNECT_ATTEMPTS="2",
            MODEL_CONNECT_TIMEOUT_SECONDS="0.5",
        )
        leg = await host.call()
        await acs.wait_for("terminate", call_connection_id=leg.call_connection_id, timeout=10)
        await leg.wait_closed()
        await host.wait_calls(0)
    finally:
        server.close()


async def test_caller_hang_up_closes_model_and_leaves_no_task(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.speak("resp_1", "item_1", tone(300, 2.0, 24_000))  # audio still queued when the caller goes
    await leg.wait_for("AudioData", count=3)
    session = next(iter(host.state.calls))
    await leg.close()

    async with asyncio.timeout(5):
        await socket.ended.wait()
    await host.wait_calls(0)
    assert session.end_reason == "acs_closed"
    leftovers = [t for t in asyncio.all_tasks() if leg.call_connection_id in t.get_name()]
    assert leftovers == []


async def test_malformed_messages_are_counted_and_dropped(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_MAX_FRAME_BYTES="8192")
    leg = await host.call()
    socket = await model.socket()
    await leg.send_raw("not json")
    await leg.send_raw("[1, 2]")
    await leg.send_raw('{"kind": "AudioData"}')
    await leg.send_raw('{"kind": "AudioData", "audioData": {"data": "@@not base64@@"}}')
    await leg.send_raw(
        json.dumps({"kind": "AudioData", "audioData": {"data": base64.b64encode(b"abc").decode()}})
    )
    await leg.send_raw(json.dumps({"kind": "AudioData", "audioData": {"data": "A" * 20_000}}))  # oversized
    await leg.send_raw("[" * 3000 + "]" * 3000)  # deeper than the JSON parser's recursion limit
    await leg.send_raw(json.dumps({"kind": "MarkData", "markData": {"id": "m1"}}))
    await leg.send_raw(json.dumps({"kind": "AudioMetadata", "audioMetadata": {"sampleRate": 44100}}))
    assert leg._ws is not None
    await leg._ws.send_bytes(b"\x00\x01")
    speech = tone(500, 0.1, 24_000)
    await leg.stream(speech, realtime=False)

    assert await socket.wait_audio_bytes(len(speech)) == speech  # the call goes on
    stats = next(iter(host.state.calls)).leg
    assert dict(stats.malformed) == {
        "not_json": 1,
        "not_object": 2,  # the deep one is refused at its first "[", before any nesting
        "Object missing required field `audioData`": 1,
        "audio_not_base64": 1,
        "audio_odd_length": 1,
        "oversized": 1,
        "unsupported_sample_rate": 1,
        "binary_frame": 1,
    }
    assert dict(stats.unknown_kinds) == {"MarkData": 1}
    await leg.close()


async def test_malformed_model_events_are_dropped(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.ws.send_str("{broken")
    await socket.send(
        {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "%%"}
    )
    await socket.send({"type": "error", "error": "not an object"})  # valid JSON, wrong shape
    await socket.send({"type": "response.done", "response": {"id": "r", "status_details": "x"}})
    await socket.send({"type": "rate_limits.updated", "rate_limits": []})
    await socket.speak("resp_1", "item_1", tone(300, 0.1, 24_000))
    await leg.wait_for("AudioData", count=5)
    dropped = next(iter(host.state.calls)).stats.model_malformed
    assert sum(dropped.values()) == 4  # counted and dropped; the call goes on
    await leg.close()


# -- the door -----------------------------------------------------------------------------------

BAD_TOKENS = {
    "missing header": None,
    "expired": lambda i, k: i.sign(audience=AUDIENCE, issued_at=1_600_000_000, lifetime_seconds=300),
    "wrong audience": lambda i, k: i.sign(audience="00000000-0000-0000-0000-000000000000"),
    "wrong issuer": lambda i, k: i.sign(audience=AUDIENCE, issuer="https://evil.example"),
    "bad signature": lambda i, k: i.sign(audience=AUDIENCE, key=k),
    "alg none": lambda i, k: unsigned_token(
        {"aud": AUDIENCE, "iss": i.issuer, "exp": 4_000_000_000}, kid=i.kid
    ),
    "unknown kid": lambda i, k: i.sign(audience=AUDIENCE, key=k, kid="never-published"),
    "garbage": lambda i, k: "not.a.jwt",
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_door_refuses_bad_tokens_before_upgrade(
    case: str,
    start_media_host: StartMediaHost,
    model: FakeRealtime,
    issuer: AcsTokenIssuer,
    foreign_key: object,
) -> None:
    host = await start_media_host()
    make = BAD_TOKENS[case]
    headers = {} if make is None else {"Authorization": f"Bearer {make(issuer, foreign_key)}"}
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            host.ws_url,
            headers={
                **headers,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        body = await response.text()
    assert response.status == 401
    assert "ACS token rejected" in body
    assert AUDIENCE not in body and issuer.issuer not in body  # never what we expect
    assert model.upgrade_attempts == 0  # nothing was opened for it
    assert sum(host.state.refused.values()) == 1


async def test_door_keeps_call_headers(start_media_host: StartMediaHost, model: FakeRealtime) -> None:
    host = await start_media_host()
    leg = await host.call()
    await model.socket()
    info = next(iter(host.state.calls)).ids
    assert (info.call_connection_id, info.correlation_id) == (leg.call_connection_id, leg.correlation_id)
    await leg.close()


async def test_concurrency_cap_refuses_with_503(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MAX_CONCURRENT_CALLS="2")
    first, second = await host.call(), await host.call()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await host.call()
    assert refused.value.status == 503
    await first.close()
    await host.wait_calls(1)
    third = await host.call()  # a slot is free again
    assert not third.closed
    await second.close()
    await third.close()
    assert host.state.refused["capacity"] == 1


async def test_observers_are_told_what_happens_and_cannot_break_the_call(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    from media_host.call_events import CallEnded, CallEvent, MediaConnected, ToolUsed, TurnTaken

    seen: list[CallEvent] = []

    class Transcript:
        def on_call_event(self, ids: object, event: CallEvent) -> None:
            seen.append(event)

    class Broken:
        def on_call_event(self, ids: object, event: CallEvent) -> None:
            raise RuntimeError("an observer's bug")

    host = await start_media_host()
    host.state.observers.extend([Broken(), Transcript()])
    leg = await host.call()
    socket = await model.socket()
    await socket.caller_said("u1", "Bye now.")
    await socket.function_call("resp_bye", "end_call", {}, call_id="call_1")
    await socket.response_done("resp_bye")
    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id)
    await leg.wait_closed()
    await host.wait_calls(0)

    kinds = [type(e) for e in seen]
    assert kinds[0] is MediaConnected and kinds[-1] is CallEnded
    assert [e.turn.text for e in seen if isinstance(e, TurnTaken)] == ["Bye now."]
    assert [(e.name, e.outcome) for e in seen if isinstance(e, ToolUsed)] == [("end_call", "ok")]
    ended = seen[-1]
    assert isinstance(ended, CallEnded) and (ended.why, ended.who, ended.tools) == (
        "assistant_ended", "assistant", {"end_call": 1},
    )  # fmt: skip


async def test_each_response_is_a_handle_the_core_can_interrupt_and_await(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.speak("resp_1", "item_1", tone(300, 1.0, 24_000), done=False)
    await leg.wait_for("AudioData", count=3)
    session = next(iter(host.state.calls))
    speech = session.model.speaking
    assert speech is not None and speech.id == "resp_1"

    await socket.speech_started()  # the caller talks over it
    await socket.wait_for("response.cancel")
    assert speech.interrupted
    waiting = asyncio.create_task(speech.generated())
    await asyncio.sleep(0.05)
    assert not waiting.done()  # the model has not said it stopped yet
    await socket.response_done("resp_1", status="cancelled")
    async with asyncio.timeout(2):
        await waiting
    assert session.model.speaking is None
    await leg.close()
