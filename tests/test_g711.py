"""The numpy μ-law codec: bit-exact with CPython's audioop, and on G.711's published table."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from media_host.g711 import pcm16_to_ulaw, ulaw_to_pcm16

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # deprecated in 3.11, gone in 3.13
    import audioop

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype="<i2").tobytes()


def samples(*values: int) -> bytes:
    return np.array(values, dtype="<i2").tobytes()


def test_decoding_every_code_matches_audioop() -> None:
    assert ulaw_to_pcm16(ALL_CODES) == audioop.ulaw2lin(ALL_CODES, 2)


def test_encoding_every_sample_matches_audioop() -> None:
    assert pcm16_to_ulaw(ALL_SAMPLES) == audioop.lin2ulaw(ALL_SAMPLES, 2)


# G.711 Table 2 (μ-law, positive half) in 14-bit units: the input range of each segment's first and
# last interval and its code, and the decoder output (mid-interval); a 16-bit sample is 4x a 14-bit one.
@pytest.mark.parametrize(
    ("low", "high", "code", "decoded"),
    [
        (0, 0, 0xFF, 0),  # silence
        (1, 2, 0xFE, 2),
        (29, 30, 0xF0, 30),  # +30..+1: 15 intervals of 2
        (31, 34, 0xEF, 33),  # +94..+31: 16 intervals of 4
        (91, 94, 0xE0, 93),
        (95, 102, 0xDF, 99),  # +222..+95: 8
        (4063, 4318, 0x8F, 4191),  # +8158..+4063: 256
        (7903, 8158, 0x80, 8031),
    ],
)
def test_published_g711_values(low: int, high: int, code: int, decoded: int) -> None:
    assert pcm16_to_ulaw(samples(4 * low, 4 * high + 3)) == bytes([code, code])
    assert ulaw_to_pcm16(bytes([code])) == samples(4 * decoded)
    assert ulaw_to_pcm16(bytes([code & 0x7F])) == samples(-4 * decoded)  # the sign bit alone differs


def test_the_extremes_saturate() -> None:
    assert pcm16_to_ulaw(samples(32767, -32768)) == b"\x80\x00"
    assert ulaw_to_pcm16(b"\x80\x00\x7f") == samples(32124, -32124, 0)


def test_audioop_rounds_negative_samples_toward_zero_magnitude() -> None:
    # audioop (Sun's g711.c) takes -x for a negative sample where ITU-T G.191's reference encoder takes
    # the one's complement (-x - 1), so near an interval edge a negative sample gets the next code:
    # bit-exact with audioop is what the ecosystem (pipecat, audioop-lts) produces, so we follow it.
    assert pcm16_to_ulaw(samples(-1, -4, -5)) == b"\x7e\x7e\x7e"  # G.191: 0x7F, 0x7F, 0x7E


def test_one_frame_round_trips_within_one_quantisation_step() -> None:
    tone = (8000 * np.sin(np.arange(160) * 2 * np.pi * 440 / 8000)).astype("<i2")
    encoded = pcm16_to_ulaw(tone.tobytes())
    assert len(encoded) == 160  # 20 ms at 8 kHz
    back = np.frombuffer(ulaw_to_pcm16(encoded), dtype="<i2").astype(np.int32)
    # Below 8060 the step is 256 (64 in 14 bits): off by at most half a step, plus the 2 dropped bits.
    assert np.all(np.abs(back - tone) <= 128 + 3)
    assert pcm16_to_ulaw(ulaw_to_pcm16(encoded)) == encoded  # decoded values re-encode to themselves


def test_empty_and_odd_inputs() -> None:
    assert ulaw_to_pcm16(b"") == b"" and pcm16_to_ulaw(b"") == b""
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_to_ulaw(b"\x00\x01\x02")
