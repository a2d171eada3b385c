"""Twilio Media Streams JSON (bidirectional `<Connect><Stream>`), translated in one place
(twilio-openai.md §3).

Inbound (Twilio -> us): `connected`, `start`, `media`, `mark`, `dtmf`, `stop` are decoded and
type-checked in one msgspec pass into small typed events (a `media` payload is base64-decoded in the
same pass); a message with another `event` becomes `Unknown`; anything else raises
`MalformedMessage` with a short reason from a bounded set (the leg counts by reason, so a sender
cannot mint new log lines). Twilio sends numbers such as `chunk` and `timestamp` as strings. Fields
we do not use (`sequenceNumber`, the `stop` body, a `dtmf` track) are skipped. Message size is
bounded by the caller.

Outbound (us -> Twilio): `media`, `mark` and `clear`, the only three Twilio accepts; anything else,
or a wrong `streamSid`, earns a 31951 warning and is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

import msgspec

from common.twilio_auth import sid_pattern

from .wire import WireError, decode

MAX_PARAMETERS = 32
MAX_PARAMETER_CHARS = 500  # TwiML bounds a <Parameter>'s name + value together by this
MAX_MARK_NAME_CHARS = 128
MARK_NAME_PATTERN = r"[A-Za-z0-9_.:-]+"  # our own names; Twilio echoes them, so they come back checked

Event = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.]+\Z")]
AccountSid = Annotated[str, msgspec.Meta(pattern=rf"^{sid_pattern('AC')}\Z")]
CallSid = Annotated[str, msgspec.Meta(pattern=rf"^{sid_pattern('CA')}\Z")]
StreamSid = Annotated[str, msgspec.Meta(pattern=rf"^{sid_pattern('MZ')}\Z")]
Track = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[a-z_]+\Z")]
Counter = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}\Z")]  # a number, as Twilio sends it
ParameterName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_PARAMETER_CHARS)]
ParameterValue = Annotated[str, msgspec.Meta(max_length=MAX_PARAMETER_CHARS)]
MarkName = Annotated[str, msgspec.Meta(max_length=MAX_MARK_NAME_CHARS, pattern=rf"^{MARK_NAME_PATTERN}\Z")]
Digit = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-Da-d*#]\Z")]


class MediaFormat(msgspec.Struct, frozen=True, rename="camel"):
    encoding: Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9/._-]+\Z")]
    sample_rate: Annotated[int, msgspec.Meta(ge=1, le=192_000)]
    channels: Annotated[int, msgspec.Meta(ge=1, le=8)]


# What Twilio documents for every stream; the leg refuses a stream that announces anything else.
MULAW_8K_MONO = MediaFormat(encoding="audio/x-mulaw", sample_rate=8000, channels=1)


@dataclass(frozen=True, slots=True)
class Connected:
    pass


@dataclass(frozen=True, slots=True)
class Start:
    stream_sid: str
    call_sid: str
    account_sid: str
    tracks: tuple[str, ...]
    media_format: MediaFormat
    # <Parameter>s from our TwiML, including the per-call token: kept out of reprs and logs.
    custom_parameters: dict[str, str] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Media:
    payload: bytes = field(repr=False)  # raw μ-law, no header; the caller's voice stays out of logs
    track: str
    chunk: int  # from 1
    timestamp: int  # ms since the stream started


@dataclass(frozen=True, slots=True)
class Mark:
    name: str


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str = field(repr=False)  # may be a PIN or a card number: never logged


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    event: str  # a short identifier (checked), safe to count and log


InboundMessage = Connected | Start | Media | Mark | Dtmf | Stop | Unknown


class MalformedMessage(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the wire form ------------------------------------------------------------------------------------
class _StartBody(msgspec.Struct, rename="camel"):
    account_sid: AccountSid
    stream_sid: StreamSid
    call_sid: CallSid
    tracks: Annotated[list[Track], msgspec.Meta(min_length=1, max_length=4)]
    media_format: MediaFormat
    custom_parameters: Annotated[
        dict[ParameterName, ParameterValue], msgspec.Meta(max_length=MAX_PARAMETERS)
    ] = {}


class _MediaBody(msgspec.Struct):
    payload: bytes  # base64 on the wire, decoded (strictly) in the same pass
    track: Track
    chunk: Counter
    timestamp: Counter


class _MarkBody(msgspec.Struct):
    name: MarkName


class _DtmfBody(msgspec.Struct):
    digit: Digit


class _ConnectedMessage(msgspec.Struct, tag_field="event", tag="connected"):
    pass


class _StartMessage(msgspec.Struct, tag_field="event", tag="start"):
    start: _StartBody


class _MediaMessage(msgspec.Struct, tag_field="event", tag="media"):
    media: _MediaBody


class _MarkMessage(msgspec.Struct, tag_field="event", tag="mark"):
    mark: _MarkBody


class _DtmfMessage(msgspec.Struct, tag_field="event", tag="dtmf"):
    dtmf: _DtmfBody


class _StopMessage(msgspec.Struct, tag_field="event", tag="stop"):
    pass


class _AnyEvent(msgspec.Struct):
    event: Event


_KNOWN = msgspec.json.Decoder(
    _ConnectedMessage | _StartMessage | _MediaMessage | _MarkMessage | _DtmfMessage | _StopMessage
)
_EVENT_ONLY = msgspec.json.Decoder(_AnyEvent)


def parse_inbound(text: str | bytes) -> InboundMessage:
    try:
        message = decode(_KNOWN, text)
    except WireError as exc:
        if exc.path == "$.event":  # not one of ours: another event is fine, a bad event name is not
            return Unknown(_event_of(text))
        if exc.path == "$.media.payload":
            raise MalformedMessage("payload_not_base64") from None
        raise MalformedMessage(exc.reason) from None
    if isinstance(message, _MediaMessage):
        body = message.media
        return Media(
            payload=body.payload, track=body.track, chunk=int(body.chunk), timestamp=int(body.timestamp)
        )
    if isinstance(message, _StartMessage):
        start = message.start
        return Start(
            stream_sid=start.stream_sid,
            call_sid=start.call_sid,
            account_sid=start.account_sid,
            tracks=tuple(start.tracks),
            media_format=start.media_format,
            custom_parameters=start.custom_parameters,
        )
    if isinstance(message, _MarkMessage):
        return Mark(name=message.mark.name)
    if isinstance(message, _DtmfMessage):
        return Dtmf(digit=message.dtmf.digit)
    return Connected() if isinstance(message, _ConnectedMessage) else Stop()


def _event_of(text: str | bytes) -> str:
    try:
        return decode(_EVENT_ONLY, text).event
    except WireError as exc:
        raise MalformedMessage(exc.reason) from None


# -- outbound -----------------------------------------------------------------------------------------
class _Payload(msgspec.Struct):
    payload: bytes  # msgspec writes bytes as base64


class _MarkName(msgspec.Struct):
    name: str


class _OutMedia(msgspec.Struct, tag_field="event", tag="media", rename="camel"):
    stream_sid: str
    media: _Payload


class _OutMark(msgspec.Struct, tag_field="event", tag="mark", rename="camel"):
    stream_sid: str
    mark: _MarkName


class _OutClear(msgspec.Struct, tag_field="event", tag="clear", rename="camel"):
    stream_sid: str


_ENCODER = msgspec.json.Encoder()
_MARK_NAME = re.compile(MARK_NAME_PATTERN)


def media(stream_sid: str, ulaw: bytes) -> str:
    """Audio for the caller: raw μ-law 8 kHz, no header; `stream_sid` is the one `Start` gave."""
    return _ENCODER.encode(_OutMedia(stream_sid=stream_sid, media=_Payload(ulaw))).decode()


def mark(stream_sid: str, name: str) -> str:
    """Ask Twilio to echo `name` once the audio sent before it has played (or been cleared).
    Raises `ValueError` for a name the inbound parser would not take back."""
    if len(name) > MAX_MARK_NAME_CHARS or not _MARK_NAME.fullmatch(name):
        raise ValueError(f"a mark name is 1-{MAX_MARK_NAME_CHARS} characters of {MARK_NAME_PATTERN}")
    return _ENCODER.encode(_OutMark(stream_sid=stream_sid, mark=_MarkName(name))).decode()


def clear(stream_sid: str) -> str:
    """Drop the audio Twilio still holds; it then echoes every outstanding mark."""
    return _ENCODER.encode(_OutClear(stream_sid=stream_sid)).decode()
