"""What a telephony leg (ACS, Twilio, ...) and the call core say to each other, and nothing else.

A leg turns its provider's wire messages into these neutral events and offers these neutral actions;
pacing and playback progress live with the leg, which knows its clock (ACS: frames sent; Twilio:
mark echoes). The call core (`call_session`) decides; it never sees a wire message.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from .audio_paths import LegAudio
from .playback import Interrupted, Playback

MAX_DISTINCT_KEYS = (
    16  # the sender picks unknown kinds and error codes: past this many, they count as "other"
)


def count_bounded(counter: Counter[str], key: str) -> bool:
    """Count `key`; True the first time (of at most MAX_DISTINCT_KEYS + 1), so each can be logged once."""
    if key not in counter and len(counter) >= MAX_DISTINCT_KEYS:
        key = "other"
    counter[key] += 1
    return counter[key] == 1


class LegHandler(Protocol):
    """What the call core hears from a leg."""

    def on_caller_audio(self, audio: bytes, fmt: LegAudio) -> None:
        """One frame of the caller's audio in the leg's format (empty: a frame of silence)."""
        ...

    def on_dtmf(self, tone: str) -> None: ...

    def on_audio_started(self, item_id: str, at: float) -> None:
        """The first audio of an assistant item went out to the caller (monotonic time)."""
        ...


class Leg(Protocol):
    """What the call core asks of a leg."""

    audio: LegAudio  # what the caller sends and what the leg plays
    playback: Playback  # paced output; its run() is one of the call's tasks
    malformed: Counter[str]  # messages dropped, by reason
    unknown_kinds: Counter[str]

    async def run(self) -> str | None:
        """Until the caller's side closes (None), or fails: then the reason to hang the call up."""
        ...

    def play(self, response_id: str, item_id: str, audio: bytes) -> None:
        """The model's audio (in the model's format) for this item, to be played after what is queued."""
        ...

    def finish_item(self, response_id: str, item_id: str) -> None: ...

    @property
    def playing(self) -> bool: ...

    async def clear(self) -> Interrupted | None:
        """Barge-in: stop now, drop what is queued. What the caller had heard of the item playing."""
        ...

    async def wait_played(self) -> None: ...

    async def hang_up(self) -> None:
        """End the call for everyone, through the provider's API."""
        ...

    async def transfer(self, target: str, *, operation_context: str) -> None:
        """Hand the call to `target` (E.164 or a provider's id) through the provider's API."""
        ...

    async def close(self, *, going_away: str | None = None) -> None: ...

    @property
    def closed(self) -> bool: ...
