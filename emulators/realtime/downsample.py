"""24 kHz -> 16 kHz for the engine's ears (VAD and recognition), bit-exact from run to run.

soxr's ResampleStream is not: the same input gives output differing in the last bits from one
process to the next (only the first stream of a process came out the same each time). Audio-wise
that is nothing, but pocketsphinx's search can tip on it and change a word, which made transcripts
flaky. A fixed polyphase FIR (up 2, low-pass, down 3) in float64 numpy is deterministic and cheap.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

UP, DOWN = 2, 3  # 24 kHz * 2 / 3 = 16 kHz
TAPS = 121
CUTOFF_HZ = 7_200  # below 8 kHz (the new Nyquist), above the speech band recognition uses


def _lowpass() -> npt.NDArray[np.float64]:
    rate = 24_000 * UP
    n = np.arange(TAPS) - (TAPS - 1) / 2
    h = 2 * CUTOFF_HZ / rate * np.sinc(2 * CUTOFF_HZ / rate * n) * np.kaiser(TAPS, 8.0)
    return np.asarray(h * (UP / h.sum()), dtype=np.float64)  # zero-stuffing divides the gain by UP


class Downsampler:
    def __init__(self) -> None:
        self._h = _lowpass()
        self._history = np.zeros(TAPS - 1)  # the end of the upsampled signal so far
        self._phase = 0  # offset of the next output within the next filtered block

    def process(self, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
        up = np.zeros(len(samples) * UP)
        up[::UP] = samples
        block = np.concatenate((self._history, up))
        filtered = np.convolve(block, self._h, mode="valid")  # one value per upsampled input sample
        out = filtered[self._phase :: DOWN]
        self._phase = (self._phase - len(filtered)) % DOWN
        self._history = block[len(block) - (TAPS - 1) :]
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)
