"""Realtime GA events: client events built, server events parsed (no sockets)."""

from __future__ import annotations

import base64
import json

import pytest

from media_host import realtime_protocol as rt


def test_session_update_is_ga_shaped() -> None:
    config = rt.SessionConfig(
        "Be brief.", "marin", "whisper-1", 0.6, 400, 200, [{"type": "function", "name": "end_call"}]
    )
    event = json.loads(rt.session_update(config))
    session = event["session"]
    assert event["type"] == "session.update"
    assert session["type"] == "realtime"  # required by GA; the preview endpoint rejects it
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "server_vad", "threshold": 0.6, "prefix_padding_ms": 200, "silence_duration_ms": 400,
        "create_response": True, "interrupt_response": True,
    }  # fmt: skip
    assert session["audio"]["output"] == {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}
    assert session["tool_choice"] == "auto"
    assert "modalities" not in session and "input_audio_format" not in session  # no preview fields


def test_client_events() -> None:
    assert json.loads(rt.append_audio("AAAA")) == {"type": "input_audio_buffer.append", "audio": "AAAA"}
    assert json.loads(rt.response_create()) == {"type": "response.create"}
    assert json.loads(rt.response_cancel("r1")) == {"type": "response.cancel", "response_id": "r1"}
    assert json.loads(rt.truncate("i1", 1234)) == {
        "type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": 1234,
    }  # fmt: skip
    assert json.loads(rt.function_output("c1", '{"ok": true}'))["item"] == {
        "type": "function_call_output", "call_id": "c1", "output": '{"ok": true}',
    }  # fmt: skip


def parse(event: dict[str, object]) -> rt.ServerEvent:
    return rt.parse_server_event(json.dumps(event))


def test_server_events() -> None:
    pcm = b"\x01\x02" * 10
    assert parse({"type": "response.output_audio.delta", "response_id": "r", "item_id": "i",
                  "delta": base64.b64encode(pcm).decode()}) == rt.AudioDelta("r", "i", pcm)  # fmt: skip
    assert (
        parse({"type": "input_audio_buffer.speech_started", "item_id": "u", "audio_start_ms": 820})
        == rt.SpeechStarted()
    )
    assert parse({"type": "response.done", "response": {"id": "r", "status": "cancelled",
                  "status_details": {"type": "cancelled", "reason": "turn_detected"}}}) == rt.ResponseDone(
        "r", "cancelled", "turn_detected")  # fmt: skip
    assert parse({"type": "response.function_call_arguments.done", "response_id": "r", "call_id": "c",
                  "name": "end_call", "arguments": "{}"}) == rt.FunctionCall("r", "c", "end_call", "{}")  # fmt: skip
    assert parse({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u",
                  "content_index": 0, "transcript": "hello"}) == rt.CallerTranscript("u", "hello")  # fmt: skip
    assert parse({"type": "error", "error": {"type": "invalid_request_error", "code": "response_cancel_not_active",
                  "message": "no"}}) == rt.ServerError("response_cancel_not_active", "no")  # fmt: skip
    assert parse({"type": "rate_limits.updated", "rate_limits": []}) == rt.OtherEvent("rate_limits.updated")


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "[]",
        '{"no":"type"}',
        '{"type":"response.output_audio.delta","delta":"@@"}',
        '{"type":"response.done"}',
        '{"type":"response.function_call_arguments.done","response_id":"r","call_id":"c","name":"end_call\\n"}',
        '{"type":"response.created","response":{"id":["r"]}}',
        '{"type":"response.output_audio.delta","response_id":"'
        + "r" * 257
        + '","item_id":"i","delta":"AAAA"}',
        '{"type":"rate_limits.updated\\n"}',
    ],
)
def test_malformed_server_events(text: str) -> None:
    with pytest.raises(rt.MalformedEvent):
        rt.parse_server_event(text)
