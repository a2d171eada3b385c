"""Test signals and measurements for PCM16 mono audio."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> bytes:
    n = np.arange(int(seconds * rate))
    return bytes((amplitude * 32767 * np.sin(2 * np.pi * freq * n / rate)).astype("<i2").tobytes())


def constant(value: int, seconds: float, rate: int) -> bytes:
    return bytes(np.full(int(seconds * rate), value, dtype="<i2").tobytes())


def samples(pcm: bytes) -> npt.NDArray[np.float64]:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def dominant_frequency(pcm: bytes, rate: int) -> float:
    x = samples(pcm)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[int(np.argmax(spectrum))])


def snr_against_sine(pcm: bytes, freq: float, rate: int, *, edge_seconds: float) -> float:
    """SNR (dB) of the middle of `pcm` against the best-fitting sine of `freq` (phase and gain free)."""
    x = samples(pcm)
    edge = int(edge_seconds * rate)
    x = x[edge : len(x) - edge]
    n = np.arange(edge, edge + len(x))
    basis = np.stack([np.sin(2 * np.pi * freq * n / rate), np.cos(2 * np.pi * freq * n / rate)], axis=1)
    fit, *_ = np.linalg.lstsq(basis, x, rcond=None)
    noise = x - basis @ fit
    return float(10 * np.log10(np.sum((basis @ fit) ** 2) / max(np.sum(noise**2), 1e-9)))
