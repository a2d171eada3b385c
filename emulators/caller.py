"""The emulated caller: bundled recordings (assets/caller/) spoken turn by turn into a call's media.

The same caller talks over any network's leg (`CallerLeg`): ACS's `MediaLeg`, Twilio's `MediaStream`.
A polite caller waits for the assistant to finish (quiet for a moment after it spoke) before saying
the next line; an impatient one may start a line while the assistant is still talking (barge-in).
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

CALLER_DIR = Path(__file__).resolve().parents[1] / "assets" / "caller"
RATE = 24_000  # the recordings' rate


class Heard(Protocol):
    @property
    def start(self) -> float: ...  # monotonic time the caller began hearing it


class CallerLeg(Protocol):
    """What the caller needs of a call's media, whichever network carries it."""

    @property
    def connected_at(self) -> float: ...  # monotonic time the media stream connected

    @property
    def sample_rate(self) -> int: ...  # of the PCM `say` takes

    def last_heard(self) -> Heard | None: ...

    def assistant_quiet_for(self) -> float: ...

    def say(self, pcm: bytes, /) -> Awaitable[None]: ...  # done once the last frame is sent


@dataclass(frozen=True)
class CallerLine:
    file: str
    text: str
    keywords: tuple[str, ...]
    speech_start_ms: int  # where speech begins and ends inside the recording (it is padded with silence)
    speech_end_ms: int

    @property
    def path(self) -> Path:
        return CALLER_DIR / self.file

    @property
    def pcm(self) -> bytes:
        return read_pcm(self.path)

    @property
    def duration_ms(self) -> int:
        return len(self.pcm) * 1000 // (RATE * 2)


@cache
def script() -> tuple[CallerLine, ...]:
    raw = json.loads((CALLER_DIR / "script.json").read_text(encoding="utf-8"))
    return tuple(
        CallerLine(
            file=line["file"],
            text=line["text"],
            keywords=tuple(line["keywords"]),
            speech_start_ms=line["speech_start_ms"],
            speech_end_ms=line["speech_end_ms"],
        )
        for line in raw["lines"]
    )


@cache
def read_pcm(path: Path) -> bytes:
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            raise ValueError(f"{path}: caller recordings are 24 kHz 16-bit mono")
        return bytes(w.readframes(w.getnframes()))


def at_rate(pcm: bytes, rate: int) -> bytes:
    """A whole recording at the call's rate (resampled in one piece, so no frame joins to click)."""
    if rate == RATE:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2")
    return bytes(soxr.resample(samples, RATE, rate, quality="HQ").astype("<i2").tobytes())


class AssistantSilent(TimeoutError):
    """The assistant did not answer within the allowed time."""


async def wait_for_assistant_turn(leg: CallerLeg, *, since: float, quiet_s: float, timeout_s: float) -> None:
    """Until the assistant has spoken after `since` and then been quiet for `quiet_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        last = leg.last_heard()
        if last is not None and last.start > since and leg.assistant_quiet_for() >= quiet_s:
            return
        await asyncio.sleep(0.05)
    raise AssistantSilent(f"the assistant did not finish a turn within {timeout_s:.0f} s")


async def converse(
    leg: CallerLeg,
    lines: tuple[CallerLine, ...],
    *,
    quiet_s: float = 0.8,
    timeout_s: float = 20.0,
    on_line: Callable[[CallerLine], None] = lambda line: None,
    silent_before: int | None = None,
    on_silence: Callable[[], None] = lambda: None,
) -> None:
    """The polite caller: each line after the assistant's turn (the greeting first). Before line
    `silent_before` it says nothing at all, until the assistant speaks again (a reprompt)."""
    since = leg.connected_at
    for index, line in enumerate(lines):
        await wait_for_assistant_turn(leg, since=since, quiet_s=quiet_s, timeout_s=timeout_s)
        if index == silent_before:
            on_silence()
            since = time.monotonic()
            await wait_for_assistant_turn(leg, since=since, quiet_s=quiet_s, timeout_s=timeout_s)
        on_line(line)
        await leg.say(at_rate(line.pcm, leg.sample_rate))
        since = time.monotonic()
