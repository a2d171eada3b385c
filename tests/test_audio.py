"""Resampling and framing helpers (no sockets)."""

from __future__ import annotations

import base64
import json

import numpy as np

from media_host.audio import FrameCutter, StreamResampler
from media_host.audio_paths import PCM24, ULAW8, LegAudio, ToModel
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


def _appended(events: list[str]) -> list[bytes]:
    return [base64.b64decode(json.loads(e)["audio"]) for e in events]


def test_caller_audio_goes_to_the_model_in_appends_of_the_set_length() -> None:
    to_model = ToModel("pcm24", PCM24, "HQ", append_ms=40)
    frames = [bytes([i]) * PCM24.frame_bytes for i in range(1, 6)]
    sent = [_appended(to_model.events(f)) for f in frames]
    assert [len(s) for s in sent] == [0, 1, 0, 1, 0]  # the odd frame waits for the next
    assert sent[1] == [frames[0] + frames[1]] and sent[3] == [frames[2] + frames[3]]
    # an ACS `silent` frame (no data) is 20 ms of silence, held like any other
    assert _appended(to_model.events(b"")) == [frames[4] + bytes(PCM24.frame_bytes)]


def test_appends_keep_time_by_audio_however_the_caller_cuts_it() -> None:
    to_model = ToModel("pcm24", PCM24, "HQ", append_ms=40)
    halves = [_appended(to_model.events(bytes([i]) * (PCM24.frame_bytes // 2))) for i in range(1, 9)]
    assert [len(a[0]) if a else 0 for a in halves] == [0, 0, 0, 1920] * 2  # 10 ms messages, 40 ms appends
    sixties = [_appended(to_model.events(bytes(3 * PCM24.frame_bytes))) for _ in range(2)]
    assert [len(a[0]) for a in sixties] == [2880, 2880]  # longer than an append: each goes whole


def test_batched_appends_survive_a_change_of_rate_and_carry_mu_law() -> None:
    to_model = ToModel("pcm24", PCM24, "HQ", append_ms=40)
    first = tone(300, 0.02, 24_000)
    assert to_model.events(first) == []
    to_model.set_leg(LegAudio("pcm16", 16_000))  # ACS announces 16 kHz: the held 24 kHz frame stays
    later = tone(300, 0.2, 16_000)
    out = [a for i in range(0, len(later), 640) for a in _appended(to_model.events(later[i : i + 640]))]
    resampled = StreamResampler(16_000, 24_000, "HQ").process(later)
    assert out[0].startswith(first) and len(out) == 5  # one append per 40 ms of the caller's audio
    soxr_burst = 734 * 2  # bytes: what 16 -> 24 kHz at HQ gives every other frame
    assert abs(sum(map(len, out)) - len(first) - len(resampled)) <= soxr_burst  # its last one held

    ulaw = ToModel("pcmu", ULAW8, "HQ", append_ms=60)  # Twilio's μ-law straight through, 3 frames each
    batches = [_appended(ulaw.events(bytes([0x7F]) * ULAW8.frame_bytes)) for _ in range(6)]
    assert [len(b[0]) if b else 0 for b in batches] == [0, 0, 480, 0, 0, 480]


def test_resampled_audio_goes_on_as_the_resampler_gives_it() -> None:
    """16 kHz in, 24 kHz to the model in 20 ms appends: whatever soxr has put out is sent at once (its
    bursts are not cut into 20 ms frames first, which would hold part of each back), and the stream
    that reaches the model is the resampler's, sample for sample (within soxr's rounding)."""
    caller = LegAudio("pcm16", 16_000)
    to_model = ToModel("pcm24", caller, "HQ", append_ms=20)
    reference = StreamResampler(16_000, 24_000, "HQ")
    source = tone(440, 1.0, 16_000)
    sent, expected = b"", b""
    for i in range(0, len(source), caller.frame_bytes):
        frame = source[i : i + caller.frame_bytes]
        sent += b"".join(_appended(to_model.events(frame)))
        expected += reference.process(frame)
        assert len(sent) == len(expected)  # nothing waits
    assert len(sent) > 0.9 * 48_000
    difference = np.frombuffer(sent, "<i2").astype(int) - np.frombuffer(expected, "<i2")
    assert np.abs(difference).max() <= 2
