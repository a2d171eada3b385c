"""The caller side of a session: 24 kHz PCM in, turns (start, end, transcript) out.

24 kHz -> deterministic polyphase FIR -> 16 kHz 20 ms frames -> webrtcvad (mode from the session's threshold) ->
an endpointer (speech starts after 3 voiced frames, with the configured pre-roll handed to the
recogniser; it ends after `silence_duration_ms` without voice) -> pocketsphinx, streamed while the
caller speaks so that only `end_utt` is left when the turn ends.

Everything is driven by audio time (samples received), never by the wall clock, so a test may feed
audio faster than real time and still get the same turn boundaries. Not thread-safe: a session
feeds it from one worker thread at a time.

Times are ms of the input stream and mark the speech itself: `audio_start_ms` is the first voiced
frame, `audio_end_ms` the end of the last one. (OpenAI documents its own values as including the
prefix padding and the silence duration; the media host only uses the events, not the numbers.)
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
import webrtcvad

from .asr import ASR_RATE, Recognizer
from .downsample import Downsampler

FRAME_MS = 20
FRAME_SAMPLES = ASR_RATE * FRAME_MS // 1000  # 320 at 16 kHz
START_FRAMES = 3  # voiced frames in a row before a turn starts
TAIL_MS = 200  # trailing silence still given to the recogniser when a turn ends
MAX_TURN_MS = 30_000  # a turn that never pauses is cut here
MAX_PENDING_MS = 60_000  # audio kept for a manual commit
MIN_COMMIT_MS = 100  # as the Realtime API: less than this in the buffer cannot be committed

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @property
    def mode(self) -> int:
        """The Realtime API's 0-1 threshold onto webrtcvad's aggressiveness 0-3 (0.5 -> 2)."""
        return min(3, max(0, int(self.threshold * 4)))


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True)
class TurnEnded:
    """A caller turn is over: by silence (`speech_stopped`) or by an explicit commit."""

    audio_start_ms: int
    audio_end_ms: int
    transcript: str
    by_vad: bool
    asr_cpu_ms: float  # recogniser CPU for this turn (thread time)
    detected_at: float  # time.perf_counter() when the end was known, before the recogniser finished


ListenEvent = SpeechStarted | TurnEnded


class EmptyBuffer(Exception):
    """A commit with less than MIN_COMMIT_MS of audio since the last turn."""


class Listener:
    def __init__(self, recognizer: Recognizer, vad: VadConfig | None = VadConfig()) -> None:
        self._asr = recognizer
        self._resampler = Downsampler()
        self._fifo = np.zeros(0, dtype=np.int16)
        self._odd = b""  # a trailing half sample from the previous append
        self._frames = 0  # 16 kHz frames processed: the audio clock
        self._vad = webrtcvad.Vad(2)
        self._config: VadConfig | None = None
        self._preroll: deque[bytes] = deque()
        self._pending: deque[bytes] = deque(maxlen=MAX_PENDING_MS // FRAME_MS)  # since the last turn
        self._voiced_run = 0
        self._in_speech = False
        self._start_frame = 0
        self._last_voiced = 0
        self._tail: list[bytes] = []
        self._asr_cpu = 0.0
        self.cpu_seconds = 0.0  # everything this listener did (resample, VAD, ASR), in thread time
        self.configure(vad)

    @property
    def audio_ms(self) -> int:
        return self._frames * FRAME_MS

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def configure(self, vad: VadConfig | None) -> None:
        """Server VAD on (`vad`) or off (None: the client commits turns itself)."""
        if vad is None and self._in_speech:
            self._asr.abort()
            self._in_speech = False
        self._config = vad
        if vad is not None:
            self._vad.set_mode(vad.mode)
            self._preroll = deque(self._preroll, maxlen=vad.prefix_padding_ms // FRAME_MS + START_FRAMES)

    def feed(self, pcm24k: bytes) -> list[ListenEvent]:
        """Append caller audio (PCM16 mono 24 kHz); returns what it completed, in order."""
        started = time.thread_time()
        data = self._odd + pcm24k
        cut = len(data) - len(data) % 2
        self._odd = data[cut:]
        resampled = self._resampler.process(np.frombuffer(data[:cut], dtype=np.int16))
        self._fifo = np.concatenate((self._fifo, resampled)) if len(self._fifo) else resampled
        events: list[ListenEvent] = []
        whole = len(self._fifo) // FRAME_SAMPLES * FRAME_SAMPLES
        frames, self._fifo = self._fifo[:whole], self._fifo[whole:]
        for offset in range(0, whole, FRAME_SAMPLES):
            event = self._frame(frames[offset : offset + FRAME_SAMPLES].tobytes())
            if event is not None:
                events.append(event)
        self.cpu_seconds += time.thread_time() - started
        return events

    def commit(self) -> TurnEnded:
        """End the turn now (client `input_audio_buffer.commit`)."""
        started = time.thread_time()
        try:
            if self._in_speech:
                return self._end_turn(by_vad=False)
            if len(self._pending) * FRAME_MS < MIN_COMMIT_MS:
                raise EmptyBuffer(
                    f"buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, "
                    f"got {len(self._pending) * FRAME_MS} ms"
                )
            start_ms = self.audio_ms - len(self._pending) * FRAME_MS
            detected = time.perf_counter()
            self._asr_cpu = 0.0
            self._timed(self._asr.start)
            for frame in self._pending:
                self._timed(self._asr.feed, frame)
            transcript = self._timed(self._asr.finish)
            self._pending.clear()
            return TurnEnded(start_ms, self.audio_ms, transcript, False, self._asr_cpu * 1000, detected)
        finally:
            self.cpu_seconds += time.thread_time() - started

    def clear(self) -> None:
        """Drop everything not yet committed (client `input_audio_buffer.clear`)."""
        self._asr.abort()
        self._in_speech = False
        self._voiced_run = 0
        self._preroll.clear()
        self._pending.clear()
        self._tail = []

    # -- the endpointer ---------------------------------------------------------------------------
    def _frame(self, frame: bytes) -> ListenEvent | None:
        index = self._frames
        self._frames += 1
        self._pending.append(frame)
        config = self._config
        if config is None:
            return None
        voiced = self._vad.is_speech(frame, ASR_RATE)
        if not self._in_speech:
            self._preroll.append(frame)
            self._voiced_run = self._voiced_run + 1 if voiced else 0
            if self._voiced_run < START_FRAMES:
                return None
            self._in_speech = True
            self._start_frame = index - START_FRAMES + 1
            self._last_voiced = index
            self._tail = []
            self._asr_cpu = 0.0
            self._timed(self._asr.start)
            for held in self._preroll:
                self._timed(self._asr.feed, held)
            self._preroll.clear()
            return SpeechStarted(self._start_frame * FRAME_MS)
        if voiced:
            for held in self._tail:  # a pause inside the turn: the recogniser needs it too
                self._timed(self._asr.feed, held)
            self._tail = []
            self._timed(self._asr.feed, frame)
            self._last_voiced = index
        else:
            self._tail.append(frame)
        silent_ms = (index - self._last_voiced) * FRAME_MS
        if silent_ms >= config.silence_duration_ms or (index - self._start_frame) * FRAME_MS >= MAX_TURN_MS:
            return self._end_turn(by_vad=True)
        return None

    def _end_turn(self, *, by_vad: bool) -> TurnEnded:
        detected = time.perf_counter()
        for held in self._tail[: TAIL_MS // FRAME_MS]:
            self._timed(self._asr.feed, held)
        self._tail = []
        transcript = self._timed(self._asr.finish)
        self._in_speech = False
        self._voiced_run = 0
        self._pending.clear()
        end_ms = (self._last_voiced + 1) * FRAME_MS if by_vad else self.audio_ms
        return TurnEnded(
            self._start_frame * FRAME_MS, end_ms, transcript, by_vad, self._asr_cpu * 1000, detected
        )

    def _timed(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            self._asr_cpu += time.thread_time() - started
