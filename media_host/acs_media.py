"""ACS bidirectional media-stream JSON, translated in one place.

Inbound (ACS -> us): `AudioMetadata`, `AudioData`, `DtmfData` become small typed events; anything
else raises `MalformedMessage` (with a short reason the session counts) or returns `UnknownKind`.
Message size is bounded by the caller (the session drops oversized messages before parsing).
Outbound (us -> ACS): `AudioData` and `StopAudio` in the documented PascalCase form.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

SUPPORTED_RATES = (16000, 24000)  # pcm16KMono, pcm24KMono


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    sample_rate: int


@dataclass(frozen=True, slots=True)
class AudioData:
    b64: str  # kept so 24 kHz audio reaches the model without a re-encode
    pcm: bytes  # empty for a `silent` frame that carries no data


@dataclass(frozen=True, slots=True)
class DtmfData:
    tone: str


@dataclass(frozen=True, slots=True)
class UnknownKind:
    kind: str


InboundMessage = AudioMetadata | AudioData | DtmfData | UnknownKind


class MalformedMessage(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_inbound(text: str | bytes) -> InboundMessage:
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise MalformedMessage("not_json") from None
    if not isinstance(message, dict):
        raise MalformedMessage("not_object")
    kind = message.get("kind", message.get("Kind"))
    if kind == "AudioData":
        return _audio_data(_section(message, "audioData"))
    if kind == "AudioMetadata":
        return _audio_metadata(_section(message, "audioMetadata"))
    if kind == "DtmfData":
        tone = _section(message, "dtmfData").get("data")
        if not isinstance(tone, str) or not tone:
            raise MalformedMessage("dtmf_without_tone")
        return DtmfData(tone=tone)
    if not isinstance(kind, str):
        raise MalformedMessage("missing_kind")
    return UnknownKind(kind=kind)


def _section(message: dict[str, object], name: str) -> dict[str, object]:
    body = message.get(name, message.get(name[0].upper() + name[1:]))
    if not isinstance(body, dict):
        raise MalformedMessage(f"missing_{name}")
    return body


def _audio_data(body: dict[str, object]) -> AudioData:
    b64 = body.get("data", "")  # a `silent` frame may carry none
    if not isinstance(b64, str):
        raise MalformedMessage("audio_not_base64")
    try:
        # strict: the string may later be spliced into JSON unescaped, so only the base64 alphabet passes
        pcm = binascii.a2b_base64(b64, strict_mode=True) if b64 else b""
    except binascii.Error:
        raise MalformedMessage("audio_not_base64") from None
    if len(pcm) % 2:
        raise MalformedMessage("audio_odd_length")
    return AudioData(b64=b64, pcm=pcm)


def _audio_metadata(body: dict[str, object]) -> AudioMetadata:
    rate, channels = body.get("sampleRate"), body.get("channels", 1)
    if rate not in SUPPORTED_RATES or not isinstance(rate, int):
        raise MalformedMessage("unsupported_sample_rate")
    if channels != 1 or body.get("encoding", "PCM") != "PCM":
        raise MalformedMessage("unsupported_format")
    return AudioMetadata(sample_rate=rate)


def audio_frame(pcm: bytes) -> str:
    """One outbound `AudioData` message (base64 has no characters JSON must escape)."""
    return (
        '{"Kind":"AudioData","AudioData":{"Data":"'
        + base64.b64encode(pcm).decode("ascii")
        + '"},"StopAudio":null}'
    )


STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'
