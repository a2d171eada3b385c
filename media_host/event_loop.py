"""The event loop the media host runs on: uvloop's when it is installed, asyncio's own otherwise.

uvloop does the loop's socket and TLS work in C (libuv), which is most of what the media host spends
per frame; `MEDIA_EVENT_LOOP=asyncio` keeps the standard loop, e.g. to compare the two.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from common.settings_reader import SettingsReader

log = logging.getLogger(__name__)

SETTING = "MEDIA_EVENT_LOOP"
LOOPS = ("uvloop", "asyncio")

T = TypeVar("T")


def loop_factory(env: Mapping[str, str]) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's own loop (`MEDIA_EVENT_LOOP=asyncio`, or uvloop not
    installed: then one warning). Raises SettingsError for a value that names neither."""
    reader = SettingsReader(env)
    choice = reader.choice(SETTING, "uvloop", LOOPS)
    reader.check("event loop")
    if choice == "asyncio":
        return None
    try:
        import uvloop  # noqa: PLC0415 - optional: the host runs without it, only slower
    except ImportError:
        log.warning("uvloop is not installed: running on asyncio's own event loop")
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], env: Mapping[str, str] = os.environ) -> T:
    """`asyncio.run(main)` on the loop `MEDIA_EVENT_LOOP` in `env` selects."""
    try:
        factory = loop_factory(env)
    except BaseException:
        main.close()  # never awaited: no "coroutine was never awaited" warning on top of the error
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
