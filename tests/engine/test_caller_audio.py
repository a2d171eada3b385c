"""The committed caller recordings are what script.json and make_caller_audio.sh say they are."""

from __future__ import annotations

import hashlib
import json

from .caller import CALLER_DIR, RATE, measure_speech_bounds, script


def test_script_lists_the_six_conversation_lines_in_order() -> None:
    files = [line.file for line in script()]
    assert files == [
        "01_hello_book.wav",
        "02_party_size.wav",
        "03_day_time.wav",
        "04_opening_hours.wav",
        "05_yes.wav",
        "06_goodbye.wav",
    ]
    assert sorted(p.name for p in CALLER_DIR.glob("*.wav")) == files
    for line in script():
        assert line.keywords and all(k == k.lower() for k in line.keywords)
        assert all(k in line.text.lower() for k in line.keywords)


def test_recordings_match_their_recorded_bounds_and_hashes() -> None:
    raw = json.loads((CALLER_DIR / "script.json").read_text())
    for entry, line in zip(raw["lines"], script(), strict=True):
        assert hashlib.sha256(line.path.read_bytes()).hexdigest() == entry["sha256"], line.file
        assert measure_speech_bounds(line.pcm) == (line.speech_start_ms, line.speech_end_ms)
        assert line.duration_ms == entry["duration_ms"]
        # ~0.5 s of silence before the voice and ~1 s after (flite adds a little of its own)
        assert 500 <= line.speech_start_ms <= 800
        assert 900 <= line.duration_ms - line.speech_end_ms <= 1300
        assert len(line.pcm) % 2 == 0 and len(line.pcm) / 2 / RATE < 5
