"""A sliding-window rate limit, per process: a leaked key must not place calls at machine speed."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `limit` events in any `window_seconds`."""

    def __init__(
        self, limit: int, *, window_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window_seconds
        self._clock = clock
        self._times: deque[float] = deque()

    def acquire(self) -> float:
        """0 if an event may happen now (and counts it); otherwise the seconds until one may."""
        now = self._clock()
        while self._times and self._times[0] <= now - self._window:
            self._times.popleft()
        if len(self._times) < self._limit:
            self._times.append(now)
            return 0.0
        return self._times[0] + self._window - now
