"""`media_host.event_loop`: uvloop unless MEDIA_EVENT_LOOP says asyncio or uvloop is missing."""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys

import pytest
import uvloop

from common.settings_reader import SettingsError
from media_host import event_loop


async def loop_kind() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


@pytest.mark.parametrize("env", [{}, {"MEDIA_EVENT_LOOP": "uvloop"}, {"MEDIA_EVENT_LOOP": " UVLoop "}])
def test_uvloop_by_default_and_when_asked(env: dict[str, str]) -> None:
    assert event_loop.run(loop_kind(), env) is uvloop.Loop


def test_asyncio_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    kind = event_loop.run(loop_kind(), {"MEDIA_EVENT_LOOP": "asyncio"})

    assert kind is asyncio.SelectorEventLoop  # asyncio's own on Linux and macOS
    assert caplog.records == []


@pytest.mark.parametrize("env", [{}, {"MEDIA_EVENT_LOOP": "uvloop"}])
def test_falls_back_to_asyncio_with_one_warning_without_uvloop(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` now raises ImportError

    with caplog.at_level(logging.WARNING, logger=event_loop.__name__):
        kind = event_loop.run(loop_kind(), env)

    assert kind is asyncio.SelectorEventLoop
    assert [r.getMessage() for r in caplog.records] == [
        "uvloop is not installed: running on asyncio's own event loop"
    ]


def test_a_value_naming_neither_stops_start_up_and_the_coroutine_is_closed() -> None:
    main = loop_kind()

    with pytest.raises(SettingsError, match=r"MEDIA_EVENT_LOOP='trio' must be one of uvloop, asyncio"):
        event_loop.run(main, {"MEDIA_EVENT_LOOP": "trio"})

    assert inspect.getcoroutinestate(main) == inspect.CORO_CLOSED
