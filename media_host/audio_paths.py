"""The audio paths of a call, chosen once from the leg's format and the model's.

Caller -> model: a leg hands over its own audio (ACS: PCM16 at 16 or 24 kHz; Twilio: μ-law at 8 kHz)
and `ToModel` makes `input_audio_buffer.append` events in the model's format. Model -> caller:
`ToLeg` turns the model's deltas into the leg's audio, which `Playback` cuts into 20 ms frames.
Where the formats match (ACS 24 kHz with PCM, Twilio with `audio/pcmu`) nothing is converted.
Otherwise one stream resampler per direction per call, never frame by frame (it would click).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Literal, Protocol

from .audio import FRAME_MS, FrameCutter, StreamResampler
from .g711 import pcm16_to_ulaw, ulaw_to_pcm16
from .realtime_protocol import MODEL_RATE, AudioFormat, append_audio

Encoding = Literal["pcm16", "pcmu"]
ULAW_RATE = 8000
ULAW_SILENCE = 0xFF


@dataclass(frozen=True)
class LegAudio:
    """A leg's audio format: what its caller sends and what it plays."""

    encoding: Encoding
    rate: int

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.encoding == "pcm16" else 1

    @property
    def bytes_per_ms(self) -> float:
        return self.rate * self.bytes_per_sample / 1000

    @property
    def frame_bytes(self) -> int:  # one 20 ms frame
        return self.rate * FRAME_MS // 1000 * self.bytes_per_sample

    @property
    def silence(self) -> int:
        return 0 if self.encoding == "pcm16" else ULAW_SILENCE


PCM24 = LegAudio("pcm16", MODEL_RATE)
ULAW8 = LegAudio("pcmu", ULAW_RATE)


class _Samples:
    """PCM16 may arrive cut mid-sample: the odd byte is carried into the stream's next chunk, so every
    later sample stays aligned (and a resampler is never handed half a sample)."""

    def __init__(self) -> None:
        self._odd = b""

    def whole(self, pcm: bytes) -> bytes:
        if self._odd:
            pcm = self._odd + pcm
        self._odd = pcm[-1:] if len(pcm) % 2 else b""
        return pcm[:-1] if self._odd else pcm

    def clear(self) -> None:
        self._odd = b""  # half a sample is not audio


class ToLeg(Protocol):
    """Model audio -> the leg's audio, stateful across one item's deltas."""

    def process(self, audio: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """The end of an item: what the stream still holds."""
        ...

    def clear(self) -> None: ...


class _Identity:
    def process(self, audio: bytes) -> bytes:
        return audio

    def flush(self) -> bytes:
        return b""

    def clear(self) -> None:
        pass


class _Pcm24ToLeg:
    """PCM16 24 kHz -> the leg's PCM16 rate, or μ-law 8 kHz."""

    def __init__(self, leg: LegAudio, quality: str) -> None:
        self._samples = _Samples()
        rate = leg.rate
        self._resampler = None if rate == MODEL_RATE else StreamResampler(MODEL_RATE, rate, quality)
        self._encode = pcm16_to_ulaw if leg.encoding == "pcmu" else None

    def process(self, audio: bytes) -> bytes:
        pcm = self._samples.whole(audio)
        return self._out(self._resampler.process(pcm) if self._resampler else pcm)

    def flush(self) -> bytes:
        self._samples.clear()
        return self._out(self._resampler.flush()) if self._resampler else b""

    def clear(self) -> None:
        self._samples.clear()
        if self._resampler:
            self._resampler.clear()

    def _out(self, pcm: bytes) -> bytes:
        return self._encode(pcm) if self._encode else pcm


def to_leg(model: AudioFormat, leg: LegAudio, quality: str) -> ToLeg:
    if model == "pcmu":
        if leg != ULAW8:
            raise ValueError("a μ-law model speaks only to a μ-law leg")
        return _Identity()
    return _Pcm24ToLeg(leg, quality)


def cutter(leg: LegAudio) -> FrameCutter:
    return FrameCutter(leg.frame_bytes, silence=leg.silence)


class ToModel:
    """The caller's audio -> the model's `input_audio_buffer.append` events, `append_ms` of audio each.

    One append per 20 ms frame costs the host a TLS write (and a wake-up of the peer) per frame: on the
    model leg that is most of a call's CPU. Holding two frames per append halves it, for 20 ms more
    wait on the first of them (MEDIA_MODEL_APPEND_MS)."""

    def __init__(self, model: AudioFormat, leg: LegAudio, quality: str, *, append_ms: int = FRAME_MS) -> None:
        if model == "pcmu" and leg != ULAW8:
            raise ValueError("a μ-law model listens only to a μ-law leg")
        self._model = model
        self._quality = quality
        model_bytes_per_ms = ULAW8.bytes_per_ms if model == "pcmu" else PCM24.bytes_per_ms
        self._append_bytes = int(model_bytes_per_ms * append_ms)
        self._held: list[bytes] = []  # in the model's format, so it outlives a change of the leg's
        self._held_bytes = 0
        self.set_leg(leg)

    def set_leg(self, leg: LegAudio) -> None:
        """ACS may announce another rate (AudioMetadata) once the stream is up."""
        self.leg = leg
        self._silence = bytes([leg.silence]) * leg.frame_bytes
        pcm_rate = leg.rate
        self._resampler = (
            None
            if self._model == "pcmu" or (leg.encoding == "pcm16" and pcm_rate == MODEL_RATE)
            else StreamResampler(pcm_rate, MODEL_RATE, self._quality)
        )
        self._cutter = FrameCutter(PCM24.frame_bytes)

    def events(self, audio: bytes) -> list[str]:
        """Model events for one of the leg's frames (empty: silence); none while a batch or resampler fills."""
        audio = audio or self._silence
        if self._resampler is None:  # the model's own format: re-encoding in C is cheaper than keeping
            return self._batch(
                audio
            )  # the sender's text, which would have to be checked character by character
        pcm = ulaw_to_pcm16(audio) if self.leg.encoding == "pcmu" else audio
        return [
            event for frame in self._cutter.push(self._resampler.process(pcm)) for event in self._batch(frame)
        ]

    def _batch(self, audio: bytes) -> list[str]:
        if not self._held and len(audio) >= self._append_bytes:
            return [append_audio(_b64(audio))]
        self._held.append(audio)
        self._held_bytes += len(audio)
        if self._held_bytes < self._append_bytes:
            return []
        batch = b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        return [append_audio(_b64(batch))]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")
