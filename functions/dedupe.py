"""Recently handled keys, so an Event Grid redelivery to this instance is skipped outright.

Across instances, ACS itself dedupes through the deterministic Repeatability-Request-ID; this cache
just spares it (and our logs) the repeat. Bounded in time and size: a redelivery only matters while
the call can still be answered.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class RecentKeys:
    def __init__(
        self, *, ttl_seconds: float, max_keys: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_keys
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order == expiry order

    def claim(self, key: str) -> bool:
        """True if the key is new (now claimed); False if it was claimed within the TTL."""
        now = self._clock()
        while self._expiry and next(iter(self._expiry.values())) <= now:
            self._expiry.popitem(last=False)
        if key in self._expiry:
            return False
        self._expiry[key] = now + self._ttl
        if len(self._expiry) > self._max:
            self._expiry.popitem(last=False)
        return True

    def release(self, key: str) -> None:
        """Forget a key whose handling failed transiently, so the redelivery gets a real attempt."""
        self._expiry.pop(key, None)
