"""Resampling and framing helpers (no sockets)."""

from __future__ import annotations

import numpy as np

from media_host.audio import FrameCutter, StreamResampler
from media_host.audio_paths import ULAW8, LegAudio
from tests.signals import snr_against_sine, tone


def test_frame_sizes() -> None:
    sizes = [LegAudio("pcm16", rate).frame_bytes for rate in (16_000, 24_000, 8_000)]
    assert (*sizes, ULAW8.frame_bytes) == (640, 960, 320, 160)


def test_mu_law_tail_is_padded_with_mu_law_silence() -> None:
    cutter = FrameCutter(ULAW8.frame_bytes, silence=ULAW8.silence)
    cutter.push(b"\x00" * 10)
    assert cutter.flush_padded() == (b"\x00" * 10 + b"\xff" * 150, 10)


def test_cutter_hands_out_exact_frames_and_pads_the_tail() -> None:
    cutter = FrameCutter(960)
    assert cutter.push(bytes(500)) == []
    frames = cutter.push(b"\x01" * 1500)
    assert [len(f) for f in frames] == [960, 960] and frames[0] == bytes(500) + b"\x01" * 460
    tail, real = cutter.flush_padded()
    assert real == 80 and tail == b"\x01" * 80 + bytes(880)
    assert cutter.flush_padded() == (None, 0)


def test_stream_resampler_is_continuous_across_chunks() -> None:
    """Fed in 20 ms chunks, the stream equals a clean tone: the state carries across chunk joins."""
    resampler = StreamResampler(16_000, 24_000, "HQ")
    source = tone(1000, 1.0, 16_000)
    out = (
        b"".join(resampler.process(source[i : i + 640]) for i in range(0, len(source), 640))
        + resampler.flush()
    )
    assert abs(len(out) // 2 - 24_000) <= 2  # flush emits what the filter held back
    assert snr_against_sine(out, 1000, 24_000, edge_seconds=0.05) > 60


def test_flush_leaves_the_stream_ready_for_the_next_utterance() -> None:
    resampler = StreamResampler(24_000, 16_000, "HQ")
    first = resampler.process(tone(500, 0.2, 24_000)) + resampler.flush()
    second = resampler.process(tone(500, 0.2, 24_000)) + resampler.flush()
    a, b = np.frombuffer(first, "<i2").astype(int), np.frombuffer(second, "<i2").astype(int)
    assert a.size == b.size == 3200  # nothing of the first utterance leaks into the second
    assert np.abs(a - b).max() <= 4  # the same audio, within rounding (-72 dB of this tone)
