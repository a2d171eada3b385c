"""`make demo PROVIDER=twilio`: the restaurant call over the Twilio leg, end to end. The Twilio emulator
posts the signed voice webhook to the real control-plane function, dials the TwiML's stream at the
gateway's /ws/twilio, and the real media host bridges it to the offline engine (μ-law <-> PCM 24 kHz)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import run_demo

GREETING = "thank you for calling contoso bistro"


def test_twilio_demo_books_a_table_and_the_assistant_hangs_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = run_demo(tmp_path, "twilio", monkeypatch)

    assert call.summary["provider"] == "twilio"
    assert call.summary["tools"] == {"end_call": 1}
    # end_call hung up through the REST stand-in (Status=completed), after the assistant's goodbye
    assert call.summary["hang_up"] == "completed_by_api"
    assert call.summary["media_host_end_reason"] == "assistant_ended"
    assert call.summary["callbacks"] == ["stream-started", "stream-stopped"]
    assert "table for two on friday at seven thirty is booked" in call.said("assistant")

    # The caller heard the greeting: the model's first turn, on the caller's side of the recording
    # (8 kHz μ-law as Twilio plays it) before the caller said a word.
    assert GREETING in call.turns[0]["text"].lower() and call.turns[0]["role"] == "assistant"
    assert call.summary["first_assistant_audio_ms"] < 1000
    assert call.rate == 8_000
    assert call.first_sound_at(1) < call.first_sound_at(0)
    assert call.sound_seconds(0) > 5 and call.sound_seconds(1) > 10  # both sides are really in the recording
