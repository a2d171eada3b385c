"""The bundled caller recordings (assets/caller/) and what script.json says about them."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

CALLER_DIR = Path(__file__).resolve().parents[2] / "assets" / "caller"
RATE = 24_000
FRAME_BYTES = RATE // 50 * 2  # 20 ms of PCM16 mono
ENERGY_FRAME_MS = 10
ENERGY_THRESHOLD_DBFS = -45.0


@dataclass(frozen=True)
class CallerLine:
    file: str
    text: str
    keywords: tuple[str, ...]
    speech_start_ms: int
    speech_end_ms: int

    @property
    def path(self) -> Path:
        return CALLER_DIR / self.file

    @property
    def pcm(self) -> bytes:
        return read_pcm(self.path)

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (RATE * 2)


@cache
def script() -> tuple[CallerLine, ...]:
    raw = json.loads((CALLER_DIR / "script.json").read_text())
    return tuple(
        CallerLine(
            file=line["file"],
            text=line["text"],
            keywords=tuple(line["keywords"]),
            speech_start_ms=line["speech_start_ms"],
            speech_end_ms=line["speech_end_ms"],
        )
        for line in raw["lines"]
    )


@cache
def read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return bytes(w.readframes(w.getnframes()))


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
