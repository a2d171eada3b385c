"""Twilio Media Streams JSON in, typed events out; our three messages out (no sockets).

Message shapes are Twilio's documented ones (twilio-openai.md §3.1-3.2); the property tests feed
anything and mutated real messages: the result is a typed event or a short reason, never another
exception.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from media_host import twilio_media as tm
from media_host.twilio_media import (
    MULAW_8K_MONO,
    Connected,
    Dtmf,
    InboundMessage,
    MalformedMessage,
    Mark,
    Media,
    MediaFormat,
    Start,
    Stop,
    Unknown,
    parse_inbound,
)
from tests.strategies import any_of_bodies

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA" + "0123456789abcdef" * 2
ACCOUNT_SID = "AC" + "fedcba9876543210" * 2
FRAME = bytes(range(160))  # 20 ms of μ-law
FRAME_B64 = base64.b64encode(FRAME).decode()

CONNECTED: dict[str, Any] = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
START: dict[str, Any] = {
    "event": "start", "sequenceNumber": "1", "streamSid": STREAM_SID,
    "start": {"accountSid": ACCOUNT_SID, "streamSid": STREAM_SID, "callSid": CALL_SID, "tracks": ["inbound"],
              "customParameters": {"callToken": "v1.x.y.z", "caller": "+1555•••0100"},
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
}  # fmt: skip
MEDIA: dict[str, Any] = {
    "event": "media", "sequenceNumber": "4", "streamSid": STREAM_SID,
    "media": {"track": "inbound", "chunk": "2", "timestamp": "5", "payload": FRAME_B64},
}  # fmt: skip
DTMF: dict[str, Any] = {
    "event": "dtmf", "streamSid": STREAM_SID, "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}
}  # fmt: skip
MARK: dict[str, Any] = {
    "event": "mark",
    "sequenceNumber": "4",
    "streamSid": STREAM_SID,
    "mark": {"name": "e3:item_abc:160"},
}
STOP: dict[str, Any] = {
    "event": "stop", "sequenceNumber": "5", "streamSid": STREAM_SID, "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID}
}  # fmt: skip
VALID = [CONNECTED, START, MEDIA, DTMF, MARK, STOP]


def parse(message: dict[str, Any]) -> InboundMessage:
    return parse_inbound(json.dumps(message))


def reason(text: str | bytes) -> str:
    with pytest.raises(MalformedMessage) as caught:
        parse_inbound(text)
    return caught.value.reason


def with_value(message: dict[str, Any], path: str, value: Any) -> str:
    copy = json.loads(json.dumps(message))
    *parents, last = path.split(".")
    target = copy
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return json.dumps(copy)


_DELETE = object()


def test_documented_messages() -> None:
    assert parse(CONNECTED) == Connected()
    assert parse(START) == Start(
        stream_sid=STREAM_SID,
        call_sid=CALL_SID,
        account_sid=ACCOUNT_SID,
        tracks=("inbound",),
        media_format=MULAW_8K_MONO,
        custom_parameters={"callToken": "v1.x.y.z", "caller": "+1555•••0100"},
    )
    assert parse(MEDIA) == Media(payload=FRAME, track="inbound", chunk=2, timestamp=5)
    assert parse(DTMF) == Dtmf(digit="1")
    assert parse(MARK) == Mark(name="e3:item_abc:160")
    assert parse(STOP) == Stop()
    assert parse_inbound(json.dumps(MEDIA).encode()) == parse(MEDIA)  # bytes frames too


def test_secrets_and_audio_stay_out_of_reprs() -> None:
    assert "1" not in repr(Dtmf(digit="1")).replace("Dtmf", "")
    start = parse(START)
    assert "v1.x.y.z" not in repr(start) and CALL_SID in repr(start)
    assert FRAME_B64 not in repr(parse(MEDIA))


def test_start_without_parameters_and_other_formats_are_carried() -> None:
    bare = parse_inbound(with_value(START, "start.customParameters", _DELETE))
    assert isinstance(bare, Start) and bare.custom_parameters == {}
    other = parse_inbound(
        with_value(
            START, "start.mediaFormat", {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1}
        )
    )
    assert isinstance(other, Start)
    assert other.media_format == MediaFormat(encoding="audio/x-l16", sample_rate=16000, channels=1)
    assert other.media_format != MULAW_8K_MONO  # the leg decides; the parser only reports


def test_unknown_events_are_named_not_refused() -> None:
    assert parse_inbound('{"event":"close"}') == Unknown("close")
    assert parse_inbound('{"event":"transcription","transcription":{"text":"hi"}}') == Unknown(
        "transcription"
    )


def test_a_stop_or_connected_body_is_not_needed() -> None:
    assert parse_inbound('{"event":"stop"}') == Stop()
    assert parse_inbound('{"event":"connected"}') == Connected()


def test_media_may_be_empty_and_any_length() -> None:
    assert parse_inbound(with_value(MEDIA, "media.payload", "")) == Media(b"", "inbound", 2, 5)
    big = base64.b64encode(bytes(8000)).decode()
    message = parse_inbound(with_value(MEDIA, "media.payload", big))
    assert isinstance(message, Media) and len(message.payload) == 8000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{", "not_json"),
        ("[]", "not_object"),
        ('"media"', "not_object"),
        ("{}", "Object missing required field `event`"),
        ('{"event":7}', "Expected `str`, got `int` at $.event"),
        ('{"event":"bad event!"}', "Expected `str` matching regex '^[A-Za-z0-9_.]+\\\\Z' at $.event"),
        ('{"event":"media"}', "Object missing required field `media`"),
        (with_value(MEDIA, "media.payload", '"},"x":"'), "payload_not_base64"),  # JSON injection attempt
        (with_value(MEDIA, "media.payload", "AAA"), "payload_not_base64"),  # unpadded
        (with_value(MEDIA, "media.payload", "AA=A"), "payload_not_base64"),
        (with_value(MEDIA, "media.payload", FRAME_B64.replace("A", "-")), "payload_not_base64"),
        (with_value(MEDIA, "media.payload", 7), "payload_not_base64"),
        (with_value(MEDIA, "media.chunk", 2), "Expected `str`, got `int` at $.media.chunk"),
        (with_value(MEDIA, "media.timestamp", "-5"), "Expected `str` matching regex '^[0-9]{1,12}\\\\Z' at $.media.timestamp"),
        (with_value(MEDIA, "media.timestamp", "5\n"), "Expected `str` matching regex '^[0-9]{1,12}\\\\Z' at $.media.timestamp"),
        (with_value(MEDIA, "media.track", _DELETE), "Object missing required field `track` at $.media"),
        (with_value(START, "start.callSid", "CA123"), "Expected `str` matching regex '^CA[0-9a-fA-F]{32}\\\\Z' at $.start.callSid"),
        (with_value(START, "start.callSid", CALL_SID + "\n"), "Expected `str` matching regex '^CA[0-9a-fA-F]{32}\\\\Z' at $.start.callSid"),
        (with_value(START, "start.accountSid", CALL_SID), "Expected `str` matching regex '^AC[0-9a-fA-F]{32}\\\\Z' at $.start.accountSid"),
        (with_value(START, "start.streamSid", "MZ" + "g" * 32), "Expected `str` matching regex '^MZ[0-9a-fA-F]{32}\\\\Z' at $.start.streamSid"),
        (with_value(START, "start.tracks", []), "Expected `array` of length >= 1 at $.start.tracks"),
        (with_value(START, "start.mediaFormat.sampleRate", 0), "Expected `int` >= 1 at $.start.mediaFormat.sampleRate"),
        (with_value(START, "start.customParameters", {"x": "y" * 501}), "Expected `str` of length <= 500 at $.start.customParameters[...]"),
        (with_value(START, "start.customParameters", {str(i): "" for i in range(33)}), "Expected `object` of length <= 32 at $.start.customParameters"),
        (with_value(START, "start.customParameters", {"callToken": 5}), "Expected `str`, got `int` at $.start.customParameters[...]"),
        (with_value(DTMF, "dtmf.digit", "12"), "Expected `str` matching regex '^[0-9A-Da-d*#]\\\\Z' at $.dtmf.digit"),
        (with_value(MARK, "mark.name", ""), "Expected `str` matching regex '^[A-Za-z0-9_.:-]+\\\\Z' at $.mark.name"),
        (with_value(MARK, "mark.name", "a" * 129), "Expected `str` of length <= 128 at $.mark.name"),
        (with_value(MARK, "mark", _DELETE), "Object missing required field `mark`"),
        ('{"event":"\\ud800"}', "not_json"),  # msgspec refuses an escaped lone surrogate
        ('{"event":"\ud800"}', "not_utf8"),
        (b'{"event":"\xff"}', "not_json"),
        ('{"event":"stop","x":' + "[" * 100_000, "too_deep"),
    ],
)  # fmt: skip
def test_malformed_messages_give_a_bounded_reason(text: str | bytes, expected: str) -> None:
    assert reason(text) == expected


def test_a_reason_never_quotes_the_sender() -> None:
    hostile = "drop table; <script>"
    for text in (
        with_value(MEDIA, "media.track", hostile),
        with_value(START, "start.callSid", hostile),
        with_value(START, "start.customParameters", {hostile: 1}),
        json.dumps({"event": hostile}),
    ):
        assert "drop" not in reason(text)


# -- outbound -------------------------------------------------------------------------------------------
def test_media_is_base64_mulaw_for_the_stream() -> None:
    assert json.loads(tm.media(STREAM_SID, FRAME)) == {
        "event": "media",
        "streamSid": STREAM_SID,
        "media": {"payload": FRAME_B64},
    }


def test_mark_has_its_name_object() -> None:
    # The OpenAI demo sends a mark without `mark.name`: Twilio rejects it (31951).
    assert json.loads(tm.mark(STREAM_SID, "e3:item_abc:160")) == {
        "event": "mark",
        "streamSid": STREAM_SID,
        "mark": {"name": "e3:item_abc:160"},
    }


def test_clear() -> None:
    assert json.loads(tm.clear(STREAM_SID)) == {"event": "clear", "streamSid": STREAM_SID}


@pytest.mark.parametrize("name", ["", "a b", 'x"}', "a" * 129, "é", "x\n"])
def test_mark_names_we_could_not_read_back_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="mark name"):
        tm.mark(STREAM_SID, name)


@SETTINGS
@given(st.text(alphabet="ABCxyz019_.:-", min_size=1, max_size=128), st.binary(max_size=400))
def test_what_we_send_twilio_echoes_back_as_we_sent_it(name: str, ulaw: bytes) -> None:
    echoed = json.loads(tm.mark(STREAM_SID, name))
    echoed["sequenceNumber"] = "9"
    assert parse(echoed) == Mark(name)
    sent = json.loads(tm.media(STREAM_SID, ulaw))
    sent["media"] |= {"track": "outbound", "chunk": "1", "timestamp": "0"}
    assert parse(sent) == Media(payload=ulaw, track="outbound", chunk=1, timestamp=0)


# -- properties ------------------------------------------------------------------------------------------
@SETTINGS
@given(any_of_bodies(VALID))
@example(with_value(MEDIA, "media.payload", "\u00e9\u00e9\u00e9\u00e9"))
@example(with_value(START, "start.customParameters", {"\ud800": "x"}))
def test_anything_becomes_an_event_or_a_short_reason(text: str | bytes) -> None:
    try:
        message = parse_inbound(text)
    except MalformedMessage as exc:
        assert 0 < len(exc.reason) <= 120 and exc.reason.isprintable()
        return
    if isinstance(message, Unknown):
        assert 0 < len(message.event) <= 64 and message.event.isascii()
    elif isinstance(message, Start):
        assert message.call_sid.startswith("CA") and len(message.call_sid) == 34
        assert len(message.custom_parameters) <= tm.MAX_PARAMETERS
    elif isinstance(message, Media):
        assert message.chunk >= 0 and message.timestamp >= 0
