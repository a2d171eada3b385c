"""ACS bidirectional media-stream JSON, translated in one place.

Inbound (ACS -> us): `AudioMetadata`, `AudioData`, `DtmfData` (camelCase on the wire) are decoded
and type-checked in one msgspec pass into small typed events; a message of another kind becomes
`UnknownKind`; anything else raises `MalformedMessage` with a short reason from a bounded set (the
session counts by reason, so an attacker cannot mint new log lines). Message size is bounded by the
caller. Outbound (us -> ACS): `AudioData` and `StopAudio` in the documented PascalCase form.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Annotated

import msgspec

from .wire import WireError, decode

SUPPORTED_RATES = (16000, 24000)  # pcm16KMono, pcm24KMono
MAX_DTMF_CHARS = 16

Kind = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.]+\Z")]


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    sample_rate: int


@dataclass(frozen=True, slots=True)
class AudioData:
    pcm: bytes  # empty for a `silent` frame that carries no data


@dataclass(frozen=True, slots=True)
class DtmfData:
    tone: str


@dataclass(frozen=True, slots=True)
class UnknownKind:
    kind: str  # a short identifier (checked), safe to count and log


InboundMessage = AudioMetadata | AudioData | DtmfData | UnknownKind


class MalformedMessage(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- the wire form (fields we do not use, such as timestamp or participantRawID, are skipped) -------
class _AudioBody(msgspec.Struct):
    data: bytes = (
        b""  # base64 on the wire, decoded (strictly) in the same pass; a `silent` frame may have none
    )


class _MetadataBody(msgspec.Struct, rename="camel"):
    sample_rate: int
    channels: int = 1
    encoding: str = "PCM"


class _DtmfBody(msgspec.Struct):
    data: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_DTMF_CHARS)]


class _AudioDataMessage(msgspec.Struct, tag_field="kind", tag="AudioData", rename="camel"):
    audio_data: _AudioBody


class _MetadataMessage(msgspec.Struct, tag_field="kind", tag="AudioMetadata", rename="camel"):
    audio_metadata: _MetadataBody


class _DtmfMessage(msgspec.Struct, tag_field="kind", tag="DtmfData", rename="camel"):
    dtmf_data: _DtmfBody


class _AnyKind(msgspec.Struct):
    kind: Kind


_KNOWN = msgspec.json.Decoder(_AudioDataMessage | _MetadataMessage | _DtmfMessage)
_KIND_ONLY = msgspec.json.Decoder(_AnyKind)


def parse_inbound(text: str | bytes) -> InboundMessage:
    try:
        message = decode(_KNOWN, text)
    except WireError as exc:
        if exc.path == "$.kind":  # not one of ours: another kind is fine, a bad kind is not
            return UnknownKind(_kind_of(text))
        if exc.path == "$.audioData.data":
            raise MalformedMessage("audio_not_base64") from None
        raise MalformedMessage(exc.reason) from None
    if isinstance(message, _AudioDataMessage):
        return _audio_data(message.audio_data.data)
    if isinstance(message, _MetadataMessage):
        return _audio_metadata(message.audio_metadata)
    return DtmfData(tone=message.dtmf_data.data)


def _kind_of(text: str | bytes) -> str:
    try:
        return decode(_KIND_ONLY, text).kind
    except WireError as exc:
        raise MalformedMessage(exc.reason) from None


def _audio_data(pcm: bytes) -> AudioData:
    if len(pcm) % 2:
        raise MalformedMessage("audio_odd_length")
    return AudioData(pcm=pcm)


def _audio_metadata(body: _MetadataBody) -> AudioMetadata:
    if body.sample_rate not in SUPPORTED_RATES:
        raise MalformedMessage("unsupported_sample_rate")
    if body.channels != 1 or body.encoding != "PCM":
        raise MalformedMessage("unsupported_format")
    return AudioMetadata(sample_rate=body.sample_rate)


def audio_frame(pcm: bytes) -> str:
    """One outbound `AudioData` message (base64 has no characters JSON must escape)."""
    return (
        '{"Kind":"AudioData","AudioData":{"Data":"'
        + base64.b64encode(pcm).decode("ascii")
        + '"},"StopAudio":null}'
    )


STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'
