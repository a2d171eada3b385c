"""Helpers over the bundled caller recordings (read by emulators.caller): framing and measuring."""

from __future__ import annotations

import numpy as np

from emulators.caller import CALLER_DIR, RATE, CallerLine, script

__all__ = ["CALLER_DIR", "RATE", "CallerLine", "frames", "measure_speech_bounds", "script"]

FRAME_BYTES = RATE // 50 * 2  # 20 ms of PCM16 mono
ENERGY_FRAME_MS = 10
ENERGY_THRESHOLD_DBFS = -45.0


def frames(pcm: bytes) -> list[bytes]:
    """20 ms frames, the last one zero-padded, as ACS and the media host send them."""
    return [pcm[i : i + FRAME_BYTES].ljust(FRAME_BYTES, b"\0") for i in range(0, len(pcm), FRAME_BYTES)]


def measure_speech_bounds(pcm: bytes) -> tuple[int, int]:
    """(start, end) in ms: the first and last 10 ms frame whose RMS is above -45 dBFS."""
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    size = RATE * ENERGY_FRAME_MS // 1000
    n = len(x) // size
    rms = np.sqrt((x[: n * size].reshape(n, size) ** 2).mean(axis=1))
    loud = np.flatnonzero(20 * np.log10(rms / 32768 + 1e-12) > ENERGY_THRESHOLD_DBFS)
    return int(loud[0]) * ENERGY_FRAME_MS, (int(loud[-1]) + 1) * ENERGY_FRAME_MS
