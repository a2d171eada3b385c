"""Caller audio to the model: pass-through at 24 kHz, one stream resampler otherwise.

While the model socket is not ready (call start, reconnect) the model events are held in a bounded
buffer and sent, in order, as soon as it is.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque

from .acs_media import AudioData
from .audio import FrameCutter, StreamResampler, frame_bytes
from .realtime_protocol import MODEL_RATE, append_audio

FRAMES_PER_SECOND = 50


class CallerAudio:
    def __init__(self, *, call_rate: int, quality: str, max_buffered_seconds: float) -> None:
        self._quality = quality
        self._held: deque[str] = deque(maxlen=int(max_buffered_seconds * FRAMES_PER_SECOND))
        self.frames_in = 0
        self.held_dropped = 0  # only when the model stays away longer than the buffer
        self.set_rate(call_rate)

    def set_rate(self, call_rate: int) -> None:
        self.call_rate = call_rate
        self._silence_b64 = base64.b64encode(bytes(frame_bytes(call_rate))).decode("ascii")
        self._resampler = (
            None if call_rate == MODEL_RATE else StreamResampler(call_rate, MODEL_RATE, self._quality)
        )
        self._cutter = FrameCutter(frame_bytes(MODEL_RATE))

    def to_model(self, data: AudioData) -> list[str]:
        """Model events for one ACS frame (none while the resampler is still filling)."""
        self.frames_in += 1
        if self._resampler is None:  # 24 kHz: the model's own format; re-encoding in C is cheaper than
            # keeping the sender's text, which would have to be checked character by character
            return [append_audio(binascii.b2a_base64(data.pcm, newline=False).decode("ascii") if data.pcm
                                 else self._silence_b64)]  # fmt: skip
        pcm = data.pcm or bytes(frame_bytes(self.call_rate))  # a `silent` frame may come without data
        return [
            append_audio(base64.b64encode(frame).decode("ascii"))
            for frame in self._cutter.push(self._resampler.process(pcm))
        ]

    def hold(self, events: list[str]) -> None:
        for event in events:
            if len(self._held) == self._held.maxlen:
                self.held_dropped += 1
            self._held.append(event)

    def release(self) -> list[str]:
        events = list(self._held)
        self._held.clear()
        return events
