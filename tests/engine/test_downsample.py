"""The engine's 24 -> 16 kHz resampler: clean, continuous across chunks, and bit-exact across processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from emulators.realtime.downsample import Downsampler
from tests.signals import dominant_frequency, snr_against_sine, tone

ROOT = Path(__file__).resolve().parents[2]


def test_tone_stays_clean_and_chunking_does_not_matter() -> None:
    source = np.frombuffer(tone(1000, 1.0, 24_000), dtype=np.int16)
    whole = Downsampler().process(source)
    chunked_resampler = Downsampler()
    chunked = np.concatenate(
        [chunked_resampler.process(source[i : i + 479]) for i in range(0, len(source), 479)]
    )
    assert np.array_equal(whole, chunked)
    assert len(whole) == 16_000
    assert dominant_frequency(whole.tobytes(), 16_000) == 1000
    assert snr_against_sine(whole.tobytes(), 1000, 16_000, edge_seconds=0.05) > 50


def test_bit_exact_in_every_process() -> None:
    """soxr's stream was not, and pocketsphinx changed words on last-bit differences."""
    probe = (
        "import hashlib, numpy as np; from emulators.realtime.downsample import Downsampler; "
        "from emulators.caller import script; d = Downsampler(); x = np.frombuffer(script()[0].pcm, np.int16); "
        "print(hashlib.sha256(b''.join(d.process(x[i:i+480]).tobytes() for i in range(0, len(x), 480))).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", probe],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("11", "18", "27")
    }
    assert len(digests) == 1
