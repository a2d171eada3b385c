"""ACS bidirectional media-stream JSON, translated in one place.

Inbound (ACS -> us): `AudioMetadata`, `AudioData`, `DtmfData` become small typed events; anything
else raises `MalformedMessage` (with a short reason the session counts) or returns `UnknownKind`.
Outbound (us -> ACS): `AudioData` and `StopAudio` in the documented PascalCase form.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

SUPPORTED_RATES = (8000, 16000, 24000, 48000)


@dataclass(frozen=True, slots=True)
class AudioMetadata:
    sample_rate: int
    frame_bytes: int  # ACS's `length`: bytes per 20 ms packet
    subscription_id: str


@dataclass(frozen=True, slots=True)
class AudioData:
    b64: str  # kept so 24 kHz audio reaches the model without a re-encode
    pcm: bytes
    silent: bool
    participant: str | None


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


def parse_inbound(text: str | bytes, *, max_audio_bytes: int) -> InboundMessage:
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("not_json") from None
    if not isinstance(message, dict):
        raise MalformedMessage("not_object")
    kind = message.get("kind", message.get("Kind"))
    if kind == "AudioData":
        return _audio_data(_section(message, "audioData"), max_audio_bytes)
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


def _audio_data(body: dict[str, object], max_audio_bytes: int) -> AudioData:
    b64 = body.get("data", "")
    silent = body.get("silent") is True
    if not isinstance(b64, str):
        raise MalformedMessage("audio_not_base64")
    if len(b64) > (max_audio_bytes * 4) // 3 + 4:
        raise MalformedMessage("audio_too_large")
    try:
        # strict: the string may later be spliced into JSON unescaped, so only the base64 alphabet passes
        pcm = binascii.a2b_base64(b64, strict_mode=True) if b64 else b""
    except binascii.Error:
        raise MalformedMessage("audio_not_base64") from None
    if len(pcm) % 2:
        raise MalformedMessage("audio_odd_length")
    participant = body.get("participantRawID")
    return AudioData(
        b64=b64, pcm=pcm, silent=silent, participant=participant if isinstance(participant, str) else None
    )


def _audio_metadata(body: dict[str, object]) -> AudioMetadata:
    rate, length, channels = body.get("sampleRate"), body.get("length"), body.get("channels", 1)
    encoding = body.get("encoding", "PCM")
    if rate not in SUPPORTED_RATES or not isinstance(rate, int):
        raise MalformedMessage("unsupported_sample_rate")
    if channels != 1 or encoding != "PCM":
        raise MalformedMessage("unsupported_format")
    subscription = body.get("subscriptionId")
    return AudioMetadata(
        sample_rate=rate,
        frame_bytes=length if isinstance(length, int) and length > 0 else rate // 50 * 2,
        subscription_id=subscription if isinstance(subscription, str) else "",
    )


def audio_frame(pcm: bytes) -> str:
    """One outbound `AudioData` message (base64 has no characters JSON must escape)."""
    return (
        '{"Kind":"AudioData","AudioData":{"Data":"'
        + base64.b64encode(pcm).decode("ascii")
        + '"},"StopAudio":null}'
    )


STOP_AUDIO = '{"Kind":"StopAudio","AudioData":null,"StopAudio":{}}'
