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
    """The caller's audio -> the model's `input_audio_buffer.append` events, one per `append_ms` of it.

    One append per 20 ms frame costs the host a TLS write (and a wake-up of the peer) per frame: on the
    model leg that is most of a call's CPU. Holding two frames per append halves it, for 20 ms more
    wait on the first of them (MEDIA_MODEL_APPEND_MS). The caller's audio is the clock: an append goes
    once `append_ms` of it has come in, with all that is held by then in the model's format."""

    def __init__(self, model: AudioFormat, leg: LegAudio, quality: str, *, append_ms: int = FRAME_MS) -> None:
        if model == "pcmu" and leg != ULAW8:
            raise ValueError("a μ-law model listens only to a μ-law leg")
        self._model = model
        self._quality = quality
        self._append_ms = append_ms
        self._since_ms = 0.0  # of the caller's audio since the last append
        self._held: list[bytes] = []  # in the model's format, so it outlives a change of the leg's
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

    def events(self, audio: bytes) -> list[str]:
        """Model events for one of the leg's frames (empty: silence); none while a batch or resampler fills."""
        audio = audio or self._silence
        self._since_ms += len(audio) / self.leg.bytes_per_ms
        if self._resampler is None:
            # the model's own format: re-encoding in C is cheaper than keeping the sender's text, which
            # would have to be checked character by character
            return self._batch(audio)
        pcm = ulaw_to_pcm16(audio) if self.leg.encoding == "pcmu" else audio
        # soxr's output comes in bursts (16 -> 24 kHz at HQ: nothing, then 30 ms): it goes on as it comes,
        # since the model takes any whole number of samples; cutting it into 20 ms frames first would
        # hold part of each burst back for nothing
        return self._batch(self._resampler.process(pcm))

    def _batch(self, audio: bytes) -> list[str]:
        """`audio` is what the caller's last message gave in the model's format (a resampler's output
        comes in bursts: it may be nothing, or more than the message's length)."""
        if audio:
            self._held.append(audio)
        if self._since_ms < self._append_ms or not self._held:
            return []  # with nothing held when its time comes, an append goes with the next audio
        self._since_ms = 0.0
        batch = b"".join(self._held)  # one part: that very object, no copy
        self._held.clear()
        return [append_audio(_b64(batch))]


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")
