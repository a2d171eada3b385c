"""Audio helpers: a stateful PCM16 stream resampler and a cutter into exact 20 ms frames.

One `StreamResampler` per direction per call: a one-shot resample per frame would filter every
frame as if zero-padded and click at each join. soxr's output is bursty, so a `FrameCutter`
re-cuts it into exact frames.
"""

from __future__ import annotations

import numpy as np
import soxr

FRAME_MS = 20


class StreamResampler:
    def __init__(self, in_rate: int, out_rate: int, quality: str) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)

    def process(self, pcm: bytes) -> bytes:
        out = self._stream.resample_chunk(np.frombuffer(pcm, dtype="<i2"))
        return bytes(out.astype("<i2", copy=False).tobytes())

    def flush(self) -> bytes:
        """Emit what the filter holds back (end of an utterance); the stream is then ready for more."""
        out = self._stream.resample_chunk(np.zeros(0, dtype="<i2"), last=True)
        self._stream.clear()
        return bytes(out.astype("<i2", copy=False).tobytes())

    def clear(self) -> None:
        self._stream.clear()


class FrameCutter:
    """Accumulates audio and hands out exact `size`-byte frames."""

    def __init__(self, size: int, *, silence: int = 0) -> None:
        self.size = size
        self._silence = silence  # the byte of silence: 0 in PCM16, 0xFF in μ-law
        self._pending = bytearray()

    def push(self, pcm: bytes) -> list[bytes]:
        self._pending += pcm
        count = len(self._pending) // self.size
        if not count:
            return []
        cut = count * self.size
        frames = [bytes(self._pending[i : i + self.size]) for i in range(0, cut, self.size)]
        del self._pending[:cut]
        return frames

    def flush_padded(self) -> tuple[bytes | None, int]:
        """The partial tail padded with silence to a whole frame, and how many real bytes it holds."""
        real = len(self._pending)
        if not real:
            return None, 0
        frame = bytes(self._pending) + bytes([self._silence]) * (self.size - real)
        self._pending.clear()
        return frame, real

    def clear(self) -> None:
        self._pending.clear()

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)
