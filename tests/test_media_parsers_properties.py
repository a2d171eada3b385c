"""Property-based tests of the media host's two parsers and of playback alignment (Hypothesis).

Whatever arrives (tests/strategies.py), a parser gives a typed event or a reason from a bounded
set; never another exception. And however the model cuts its audio into deltas, the caller hears the same bytes.
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from media_host import realtime_protocol as rt
from media_host.acs_media import InboundMessage, MalformedMessage, parse_inbound
from media_host.audio_paths import PCM24, to_leg
from media_host.playback import Playback
from tests.strategies import any_of_bodies

SETTINGS = settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

ACS_VALID: list[dict[str, Any]] = [
    {"kind": "AudioData", "audioData": {"data": base64.b64encode(bytes(960)).decode(), "silent": False}},
    {"kind": "AudioMetadata", "audioMetadata": {"encoding": "PCM", "sampleRate": 24000, "channels": 1}},
    {"kind": "DtmfData", "dtmfData": {"data": "5"}},
]
MODEL_VALID: list[dict[str, Any]] = [
    {"type": "response.output_audio.delta", "response_id": "r", "item_id": "i", "delta": "AAAA"},
    {"type": "response.created", "response": {"id": "r"}},
    {"type": "response.done", "response": {"id": "r", "status": "completed", "status_details": None}},
    {"type": "response.function_call_arguments.done", "response_id": "r", "call_id": "c", "name": "end_call",
     "arguments": "{}"},
    {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u", "transcript": "hi"},
    {"type": "error", "error": {"code": "x", "message": "y"}},
    {"type": "input_audio_buffer.speech_started"},
]  # fmt: skip


def acs_parse(text: str | bytes) -> InboundMessage | str:
    try:
        return parse_inbound(text)
    except MalformedMessage as exc:
        return exc.reason


def model_parse(text: str | bytes) -> rt.ServerEvent | str:
    try:
        return rt.parse_server_event(text)
    except rt.MalformedEvent as exc:
        return exc.reason


@SETTINGS
@given(any_of_bodies(ACS_VALID))
@example(
    '{"kind": "AudioData", "audioData": {"data": "\u00e9\u00e9\u00e9\u00e9"}}'
)  # once hung up every call
def test_acs_messages_become_an_event_or_a_short_reason(text: str | bytes) -> None:
    result = acs_parse(text)  # any other exception fails the test
    if isinstance(result, str):
        assert 0 < len(result) <= 120 and result.isprintable()


@SETTINGS
@given(any_of_bodies(MODEL_VALID))
def test_model_events_become_an_event_or_a_short_reason(text: str | bytes) -> None:
    result = model_parse(text)
    if isinstance(result, str):
        assert 0 < len(result) <= 120 and result.isprintable()
    elif isinstance(result, rt.AudioDelta | rt.AudioDone | rt.FunctionCall):
        assert isinstance(result.response_id, str) and 0 < len(result.response_id) <= rt.MAX_ID_CHARS
    elif isinstance(result, rt.OtherEvent):
        assert len(result.type) <= 64


@SETTINGS
@given(st.binary(min_size=2, max_size=4000).filter(lambda b: len(b) % 2 == 0), st.data())
def test_any_cut_of_the_model_audio_plays_the_same_bytes(pcm: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.sets(st.integers(1, len(pcm) - 1), max_size=12)) if len(pcm) > 1 else [])
    playback = Playback(
        _never_sent, leg=PCM24, to_leg=to_leg("pcm24", PCM24, "HQ"), lead_ms=60, max_queued_seconds=10
    )
    for a, b in zip([0, *cuts], [*cuts, len(pcm)], strict=True):
        playback.push("r", "i", pcm[a:b])
    playback.finish_item("r", "i")
    frames = [f.pcm for f in playback._queue]
    assert b"".join(frames)[: len(pcm)] == pcm


async def _never_sent(frame: bytes, item_id: str, sent: int) -> None:
    raise AssertionError("the pump is not running")
