"""Waiting for a condition on state that changes as messages come and go."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Changes:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Until `predicate()` holds (checked after every `notify`); `TimeoutError` after `timeout` s."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self._event.clear()
                await self._event.wait()
