"""G.711 μ-law <-> 16-bit PCM, bit-exact with CPython's `audioop.ulaw2lin`/`lin2ulaw` (width 2).

Only needed when the model does not take Twilio's μ-law as it is (`audio/pcmu`). NumPy rather than
`audioop`: that module is deprecated in 3.11 and removed in 3.13 (PEP 594), and its backport
(`audioop-lts`) installs only on 3.13+, a version-conditional C dependency; NumPy is here already and
codes a second of audio in under a millisecond (twilio-openai.md §6).

μ-law: sign bit, 3-bit segment, 4-bit step, all bits inverted; 14-bit magnitude biased by 33 and
clipped at 8159; `0xFF` (and `0x7F`) is silence. Like audioop, a negative sample's magnitude is -x,
where ITU-T G.191's reference encoder takes -x - 1: 508 negative inputs get the neighbouring code.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_BIAS = 0x21  # 33, in 14-bit units
_CLIP = 8159
# The largest biased 14-bit magnitude of each segment; above the last, the code saturates.
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _decode_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)  # 16-bit units, bias 0x84 = 4 x 33
    return np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84).astype("<i2")


_ULAW_TO_PCM16 = _decode_table()


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """μ-law bytes -> the same number of 16-bit little-endian samples."""
    return _ULAW_TO_PCM16[np.frombuffer(ulaw, dtype=np.uint8)].tobytes()


def pcm16_to_ulaw(pcm: bytes) -> bytes:
    """16-bit little-endian samples -> one μ-law byte each. Raises `ValueError` for an odd length."""
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of bytes")
    sample = np.frombuffer(pcm, dtype="<i2").astype(np.int32) >> 2  # to 14 bits, rounding down
    mask = np.where(sample < 0, 0x7F, 0xFF)  # the sign bit is set for positive values after inversion
    biased = np.minimum(np.abs(sample), _CLIP) + _BIAS
    segment = np.searchsorted(_SEGMENT_ENDS, biased)
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((biased >> (segment + 1)) & 0x0F))
    return ((code ^ mask) & 0xFF).astype(np.uint8).tobytes()
