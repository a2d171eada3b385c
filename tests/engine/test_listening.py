"""Caller audio in, turns out: VAD boundaries and transcripts of the bundled recordings."""

from __future__ import annotations

from functools import cache

import pytest

from emulators.realtime.asr import Recognizer, shared_model
from emulators.realtime.listening import EmptyBuffer, Listener, SpeechStarted, TurnEnded, VadConfig

from .caller import CallerLine, frames, script

TOLERANCE_MS = 300


SERVER_VAD = VadConfig()  # the Realtime API's defaults: threshold 0.5, 300 ms pre-roll, 500 ms silence


def new_listener(vad: VadConfig | None = SERVER_VAD) -> Listener:
    return Listener(Recognizer(shared_model()), vad)


@cache
def listen(file: str) -> tuple[list[SpeechStarted], list[TurnEnded]]:
    """One recording through a fresh listener, as 20 ms frames (what the media host sends)."""
    line = next(line for line in script() if line.file == file)
    listener = new_listener()
    events = [event for frame in frames(line.pcm) for event in listener.feed(frame)]
    return (
        [e for e in events if isinstance(e, SpeechStarted)],
        [e for e in events if isinstance(e, TurnEnded)],
    )


LINES = pytest.mark.parametrize("line", script(), ids=lambda line: line.file)


@LINES
def test_transcript_contains_the_keywords(line: CallerLine) -> None:
    _, ended = listen(line.file)
    assert len(ended) == 1
    words = ended[0].transcript.split()
    assert all(k in words for k in line.keywords), (ended[0].transcript, line.keywords)


@LINES
def test_turn_boundaries_are_within_300_ms_of_the_truth(line: CallerLine) -> None:
    started, ended = listen(line.file)
    assert len(started) == 1 and len(ended) == 1
    assert abs(started[0].audio_start_ms - line.speech_start_ms) <= TOLERANCE_MS
    assert abs(ended[0].audio_end_ms - line.speech_end_ms) <= TOLERANCE_MS
    assert ended[0].audio_start_ms == started[0].audio_start_ms
    assert ended[0].by_vad


def test_boundaries_follow_audio_time_not_how_the_audio_is_chunked() -> None:
    """Odd-sized appends (even half samples) give the same turn as 20 ms frames."""
    line = script()[2]
    listener = new_listener()
    pcm = line.pcm
    events = [e for i in range(0, len(pcm), 1237) for e in listener.feed(pcm[i : i + 1237])]
    ended = [e for e in events if isinstance(e, TurnEnded)]
    reference = listen(line.file)[1][0]
    assert [(e.audio_start_ms, e.audio_end_ms, e.transcript) for e in ended] == [
        (reference.audio_start_ms, reference.audio_end_ms, reference.transcript)
    ]


def test_turns_are_timed_on_the_whole_input_stream() -> None:
    listener = new_listener()
    first, second = script()[0], script()[1]
    events = [e for f in frames(first.pcm) + frames(second.pcm) for e in listener.feed(f)]
    ended = [e for e in events if isinstance(e, TurnEnded)]
    offset = len(frames(first.pcm)) * 20
    assert len(ended) == 2
    assert abs(ended[1].audio_start_ms - (offset + second.speech_start_ms)) <= TOLERANCE_MS


def test_silence_is_not_a_turn_and_cannot_be_committed_when_short() -> None:
    listener = new_listener()
    assert listener.feed(bytes(960 * 100)) == []  # 2 s of digital silence
    assert 1940 <= listener.audio_ms <= 2000  # soxr holds back ~20 ms until more audio comes
    listener.clear()
    with pytest.raises(EmptyBuffer):
        listener.commit()


def test_manual_commit_without_vad_transcribes_the_buffer() -> None:
    listener = new_listener(vad=None)
    line = script()[1]
    assert listener.feed(line.pcm) == []  # no VAD: nothing happens until the commit
    turn = listener.commit()
    assert not turn.by_vad
    assert all(k in turn.transcript.split() for k in line.keywords)
    with pytest.raises(EmptyBuffer):
        listener.commit()  # the buffer went with the turn


def test_commit_mid_speech_ends_the_turn_there() -> None:
    listener = new_listener()
    pcm = script()[0].pcm
    cut = 48 * 2000  # 2 s in: "hi i would like to book ..."
    events = listener.feed(pcm[:cut])
    assert [type(e) for e in events] == [SpeechStarted]
    turn = listener.commit()
    assert 1940 <= turn.audio_end_ms <= 2000 and not turn.by_vad
    assert "like" in turn.transcript.split()
    assert not listener.in_speech


def test_clear_drops_the_turn_in_progress() -> None:
    listener = new_listener()
    pcm = script()[0].pcm
    listener.feed(pcm[: 48 * 2000])
    listener.clear()
    rest = listener.feed(pcm[48 * 2000 :])
    # what follows the clear is a new turn: the tail of the sentence, without its beginning
    ended = [e for e in rest if isinstance(e, TurnEnded)]
    assert len(ended) == 1 and ended[0].audio_start_ms >= 1940
    assert "table" in ended[0].transcript.split() and "hi" not in ended[0].transcript.split()
