"""Phone manners the call core keeps time for: the caller's silence, and keys pressed on the keypad.

Both only keep time and say when something is due; the call core (`call_session`) decides what the
assistant says about it. They work the same for every leg: a leg only reports audio and keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class NoInputWatch:
    """Counts the caller's silence from the end of the assistant's playout (not of its generation,
    which runs ahead of what the caller has heard), and calls `on_silence(n)` for the n-th silence of
    `seconds` in a row. Caller speech or a key resets the count."""

    def __init__(
        self,
        seconds: float,  # 0: never
        *,
        played: Callable[[], Awaitable[None]],  # until the assistant's audio has played out
        on_silence: Callable[[int], Awaitable[None]],
    ) -> None:
        self._seconds = seconds
        self._played = played
        self._on_silence = on_silence
        self._timer: asyncio.Task[None] | None = None
        self.silences = 0  # in a row, unanswered

    def arm(self) -> None:
        """The assistant has said its piece (or waits for the caller to speak first): start counting."""
        self.disarm()
        if self._seconds > 0:
            self._timer = asyncio.create_task(self._count(), name="no-input")

    def disarm(self) -> None:
        """Something is happening (a response, a tool): not silence."""
        if self._timer is not None and self._timer is not asyncio.current_task():
            self._timer.cancel()
        self._timer = None

    def heard(self) -> None:
        """The caller spoke or pressed a key."""
        self.silences = 0
        self.disarm()

    async def _count(self) -> None:
        await self._played()
        await asyncio.sleep(self._seconds)
        self.silences += 1
        self._timer = None  # what on_silence starts may arm the watch again
        await self._on_silence(self.silences)

    async def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer


class KeyCollector:
    """Keys pressed in a row become one input: sent on the terminator (e.g. "#", kept in the input)
    or after a gap of `gap_s` without a key, whichever comes first."""

    def __init__(self, *, gap_s: float, terminator: str, on_keys: Callable[[str], None]) -> None:
        self._gap_s = gap_s
        self._terminator = terminator
        self._on_keys = on_keys
        self._keys: list[str] = []
        self._gap: asyncio.TimerHandle | None = None

    def press(self, tone: str) -> None:
        self._keys.append(tone)
        if self._gap is not None:
            self._gap.cancel()
            self._gap = None
        if self._terminator and tone == self._terminator:
            self.flush()
        else:
            self._gap = asyncio.get_running_loop().call_later(self._gap_s, self.flush)

    def flush(self) -> None:
        if self._gap is not None:
            self._gap.cancel()
            self._gap = None
        keys, self._keys = "".join(self._keys), []
        if keys:
            self._on_keys(keys)

    def close(self) -> None:
        """The call is over: keys not yet sent go nowhere."""
        if self._gap is not None:
            self._gap.cancel()
        self._keys = []
