"""How `python -m media_host` and `python -m all_in_one` run: one process per core behind one port.

MEDIA_WORKERS=1 is a lone process (`serve`, no manager). Above that, gunicorn's arbiter is the manager:
it forks MEDIA_WORKERS workers, each with its own SO_REUSEPORT socket on the port running the same
`serve`, replaces a worker that dies or whose event loop stops answering, and on SIGTERM sends SIGTERM
to every worker at once, then waits MEDIA_DRAIN_SECONDS + AFTER_DRAIN_SECONDS before it kills what
is left. The kernel picks a worker for each connection by hash, not by load; a worker that dies takes
the connections it had not yet accepted with it; and another host started by the same user on the
same port would share it (not a concern in a container, which has the port to itself).

The worker is ours, on gunicorn's documented worker base class, rather than aiohttp's
GunicornWebWorker: that one stops listening before the app's shutdown runs, so during the drain
/readyz would be refused instead of answering 503 and the all-in-one's control routes (the callbacks
of the calls still in progress) would go unanswered; it also listens again with aiohttp's default
backlog of 128. Running `serve` keeps one drain and one start-up for both ways of running.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker

from common.settings_reader import SettingsError

from . import event_loop
from .app import LISTEN_BACKLOG, LOG_FORMAT, STOP_SIGNALS, serve
from .settings import MediaSettings
from .tools import build_tools

# What a worker still does once the drain is over: hang up the calls left (close_calls waits up to
# 5 s) and flush telemetry (up to 2 s). The platform's grace period must exceed the drain by more.
AFTER_DRAIN_SECONDS = 10
HEARTBEAT_SECONDS = 1.0  # gunicorn's default timeout (30 s) replaces a worker silent that long


def run(settings: MediaSettings, make_app: Callable[[], web.Application], *, name: str) -> int:
    """Serve what `make_app` makes on HOST:PORT in MEDIA_WORKERS processes until SIGTERM; the exit code."""
    host = os.environ.get("HOST", "0.0.0.0")
    try:
        if settings.workers == 1:
            start_loop(serve(make_app(), host=host, port=settings.port, name=name))
        else:
            build_tools(settings)  # loaded in every worker; a bad MEDIA_EXTRA_TOOLS stops here, in one line
            # A worker is born with the stop signals held, until `serve` handles them: one sent while it
            # boots would otherwise reach the arbiter's handlers it inherits, or gunicorn's, and be lost.
            os.register_at_fork(before=_hold_stop_signals, after_in_parent=_release_stop_signals)
            _Arbiter(settings, make_app, host=host, name=name).run()  # exits with the arbiter's status
    except SettingsError as exc:  # MEDIA_EXTRA_TOOLS are loaded as the app starts
        print(exc, file=sys.stderr)
        return 2
    return 0


def start_loop(main: Coroutine[Any, Any, None]) -> None:
    """The one place an event loop starts, in a lone process and in each worker (after the fork): uvloop's
    unless MEDIA_EVENT_LOOP=asyncio (media_host.event_loop)."""
    event_loop.run(main)


def _hold_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release_stop_signals() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


class MediaWorker(Worker):  # type: ignore[misc]  # gunicorn ships no type information
    """One worker: `serve` on its own socket, with its own app, clients, exporter and calls."""

    def run(self) -> None:
        app: web.Application = self.wsgi  # made in this process, after the fork
        # Until the app has started, a failure is a boot error: the arbiter stops (exit 3) instead of
        # replacing the worker forever.
        self.booted = False
        app.on_startup.append(self._started)
        start_loop(self._serve(app))

    async def _started(self, app: web.Application) -> None:
        self.booted = True
        _release_stop_signals()  # `serve` handles them now

    async def _serve(self, app: web.Application) -> None:
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await serve(app, sockets=[listener.sock for listener in self.sockets], name=self.cfg.proc_name)
        finally:
            heartbeat.cancel()

    async def _heartbeat(self) -> None:
        while True:
            self.notify()
            if os.getppid() != self.ppid:  # the arbiter died: drain as if it had sent SIGTERM
                os.kill(os.getpid(), signal.SIGTERM)
                return
            await asyncio.sleep(HEARTBEAT_SECONDS)


class _Log(Logger):  # type: ignore[misc]
    """The arbiter's own lines (start, worker booted or died) in the workers' format."""

    error_fmt = LOG_FORMAT
    datefmt = None


class _Arbiter(BaseApplication):  # type: ignore[misc]
    def __init__(
        self, settings: MediaSettings, make_app: Callable[[], web.Application], *, host: str, name: str
    ) -> None:
        self.options = {
            "bind": [f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"],
            "workers": settings.workers,
            "worker_class": MediaWorker,
            # Every worker drains for MEDIA_DRAIN_SECONDS, then hangs up and flushes: only then SIGKILL.
            "graceful_timeout": math.ceil(settings.drain_seconds) + AFTER_DRAIN_SECONDS,
            "backlog": LISTEN_BACKLOG,
            # Each worker binds its own socket to the port: the kernel spreads new connections over them
            # by a hash of the addresses, evenly (100 in a row: 45-55 per worker, 2 workers, 5 runs),
            # where one shared socket goes to whichever worker wakes first (28-72 in the same test).
            "reuse_port": True,
            "proc_name": name,
            "loglevel": settings.log_level.lower(),
            "logger_class": _Log,
            "control_socket_disable": True,  # no runtime control: it would be a socket in $HOME
        }
        self.make_app = make_app
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> web.Application:
        return self.make_app()  # in each worker, after the fork: no loop, thread or socket is shared
