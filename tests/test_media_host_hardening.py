"""What an attacker or a flaky network sends the media host: the call goes on, or ends properly.

Each test is one thing seen from outside (issue 9): a message that used to hang up a caller, a frame
that closed the socket with nobody hanging up, a socket that went quiet, a log flood.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging

import pytest

from common import log_safety
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from tests.conftest import AUDIENCE, StartMediaHost
from tests.fake_realtime import FakeRealtime
from tests.signals import dominant_frequency, snr_against_sine, tone

FRAME_24K = 960


async def test_audio_with_non_ascii_characters_is_dropped_and_the_call_goes_on(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    for bad in ("é" * 1280, "\uff21" * 4, "AAAA\u0000"):
        await leg.send_json({"kind": "AudioData", "audioData": {"data": bad, "silent": False}})
    speech = tone(440, 0.2, 24_000)
    await leg.stream(speech, realtime=False)

    assert await socket.wait_audio_bytes(len(speech)) == speech
    assert next(iter(host.state.calls)).leg.malformed == {"audio_not_base64": 3}
    assert not leg.closed
    await leg.close()


async def test_model_ids_of_the_wrong_type_are_dropped_and_the_call_goes_on(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    pcm = base64.b64encode(tone(300, 0.1, 24_000)).decode()
    for bad in (
        {"type": "response.created", "response": {"id": ["r1"]}},
        {"type": "response.output_audio.delta", "response_id": {"r": 1}, "item_id": "i", "delta": pcm},
        {"type": "response.output_audio.delta", "response_id": "r", "item_id": ["i"], "delta": pcm},
        {"type": "response.function_call_arguments.done", "response_id": "r", "call_id": {}, "name": "x"},
        {
            "type": "response.function_call_arguments.done",
            "response_id": "r",
            "call_id": "c",
            "name": ["end_call"],
        },
        {"type": "response.done", "response": {"id": 7}},
        {"type": "response.output_audio.done", "response_id": "r", "item_id": "x" * 10_000},
        {"type": ["session.updated"]},
    ):
        await socket.send(bad)
    answer = tone(500, 0.2, 24_000)
    await socket.speak("resp_1", "item_1", answer)
    await leg.wait_for("AudioData", count=10)

    session = next(iter(host.state.calls))
    assert sum(session.stats.model_malformed.values()) == 8
    assert not session.stats.tool_calls  # a tool call with a bad id or name never runs
    assert leg.audio_received()[: len(answer)] == answer
    assert not leg.closed
    await leg.close()


async def test_odd_length_deltas_keep_24k_audio_byte_exact(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="1000")
    leg = await host.call()
    socket = await model.socket()
    answer = tone(500, 0.4, 24_000)
    await socket.speak("resp_1", "item_1", answer, chunk=1001)  # every delta ends mid-sample
    await leg.wait_for("AudioData", count=20)

    assert leg.audio_received()[: len(answer)] == answer
    await leg.close()


async def test_odd_length_deltas_keep_a_16k_call_clean(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="1000")
    leg = await host.call(sample_rate=16_000)
    socket = await model.socket()
    await socket.speak("resp_1", "item_1", tone(440, 1.0, 24_000), chunk=4801)
    await leg.wait_for("AudioData", count=50)

    heard = leg.audio_received()
    assert dominant_frequency(heard, 16_000) == pytest.approx(440, abs=2)
    assert snr_against_sine(heard, 440, 16_000, edge_seconds=0.1) > 60  # a one-byte shift is pure noise
    assert not leg.closed
    await leg.close()


async def test_message_too_big_for_the_transport_hangs_the_call_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(MEDIA_MAX_FRAME_BYTES="4096")
    leg = await host.call()
    await model.socket()
    session = next(iter(host.state.calls))
    await leg.send_raw(json.dumps({"kind": "AudioData", "audioData": {"data": "A" * 100_000}}))
    await leg.stream(tone(300, 0.1, 24_000), realtime=False)
    await asyncio.sleep(0.1)
    assert session.leg.malformed == {"oversized": 1} and not leg.closed  # dropped, the call goes on

    await leg.send_raw("A" * (1 << 20) + "A")  # over what the transport takes: it must close
    await acs.wait_for("terminate", call_connection_id=leg.call_connection_id)
    await leg.wait_closed()
    await host.wait_calls(0)
    assert session.end_reason == "acs_message_too_big"


async def test_a_silent_acs_socket_is_hung_up(
    start_media_host: StartMediaHost, model: FakeRealtime, acs: CallAutomationStandIn
) -> None:
    host = await start_media_host(MEDIA_IDLE_SECONDS="0.6")
    live, half_open = await host.call(), await host.call()
    live.start_stream()  # a frame every 20 ms, as ACS sends even in silence
    sessions = {s.ids.call_connection_id: s for s in host.state.calls}

    await acs.wait_for("terminate", call_connection_id=half_open.call_connection_id, timeout=5)
    await half_open.wait_closed()
    await asyncio.sleep(0.8)
    assert sessions[half_open.call_connection_id].end_reason == "media_idle"
    assert not live.closed and live.call_connection_id in {s.ids.call_connection_id for s in host.state.calls}
    await live.close()


async def test_a_flood_of_bad_input_logs_a_few_lines(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="media_host")
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.wait_for("response.create")  # the session is up: an error now is not a rejection
    for n in range(300):
        await leg.send_json({"kind": f"Kind{n}", f"kind{n}Data": {}})  # a new kind every time
        await leg.send_raw(f"not json {n}")
        await leg.send_json({"kind": "AudioData", "audioData": {"data": n}})
        await socket.ws.send_str(f"{{broken {n}")
        await socket.send({"type": "error", "error": {"code": f"code_{n}", "message": "x" * 50_000}})
    speech = tone(300, 0.1, 24_000)
    await leg.stream(speech, realtime=False)
    await socket.speak("resp_1", "item_1", tone(500, 0.1, 24_000))
    await socket.wait_audio_bytes(len(speech))  # each side's garbage came first: it has all been read
    await leg.wait_for("AudioData", count=5)
    session = next(iter(host.state.calls))
    await leg.close()
    await host.wait_calls(0)

    lines = [r.getMessage() for r in caplog.records if r.name.startswith("media_host")]
    assert len(lines) < 30, lines  # 1,500 bad inputs: a line per kind of trouble (bounded), the summary
    assert max(map(len, lines)) <= log_safety.MAX_LOG_CHARS + 50
    assert sum(session.leg.unknown_kinds.values()) == 300
    assert len(session.leg.unknown_kinds) == 17  # 16 names, then "other": the sender cannot grow it
    assert session.leg.malformed["not_json"] == 300
    assert session.stats.model_malformed["not_json"] == 300
    assert sum(session.stats.model_errors.values()) == 300 and len(session.stats.model_errors) == 17


def test_any_log_line_can_be_written() -> None:
    """A lone surrogate (anyone's header, say) must not make the handler drop the record."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", write_through=True)
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.log_safety")
    logger.addHandler(handler)
    factory = logging.getLogRecordFactory()
    try:
        log_safety.install()
        logger.warning("caller said %s", "\ud800 and \r\nFAKE LINE " + "x" * 10_000)
    finally:
        logging.setLogRecordFactory(factory)
        logger.removeHandler(handler)
    written = stream.buffer.getvalue().decode("utf-8")
    assert written.startswith("caller said \\ud800 and \\x0d\\nFAKE LINE")
    assert "more characters]" in written and len(written) < log_safety.MAX_LOG_CHARS + 100


async def test_ids_from_the_upgrade_are_checked_before_they_reach_any_record(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host()
    leg = await host.call(query="caller=%3Cscript%3E" + "9" * 200)
    odd = MediaLeg(call_connection_id="c" * 5000, correlation_id="bad id;drop")
    await odd.connect(host.ws_url, host.issuer.sign(audience=AUDIENCE))
    await host.wait_calls(2)

    by_leg = {s.ids.correlation_id: s.ids for s in host.state.calls}
    assert by_leg[leg.correlation_id].caller == ""  # not an id: left out rather than recorded
    assert by_leg[leg.correlation_id].call_connection_id == leg.call_connection_id
    assert by_leg[""].call_connection_id == ""
    await leg.close()
    await odd.close()


async def test_playback_forgets_items_once_heard(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    """A model may start any number of items in a call: what the host keeps of them must not grow."""
    host = await start_media_host(MEDIA_PLAYBACK_LEAD_MS="1000")
    leg = await host.call()
    socket = await model.socket()
    for n in range(100):
        await socket.speak(f"resp_{n}", f"item_{n}", tone(300, 0.02, 24_000))
    await leg.wait_for("AudioData", count=100, timeout=10)
    session = next(iter(host.state.calls))
    assert len(session.playback._items) <= 2  # the item playing, and at most one queued
    await leg.close()
