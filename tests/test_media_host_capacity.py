"""No hidden cap between the media host and the model: MAX_CONCURRENT_CALLS is the only limit.

An aiohttp ClientSession pools at most 100 connections by default, and every realtime socket holds one
for its whole call: call 101 used to wait for the connect timeout and be hung up with
`model_unavailable` while its caller heard nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys

from tests.conftest import StartMediaHost
from tests.fake_realtime import FakeRealtime

CALLS = 130  # over aiohttp's pool default (100), and over the server's listen backlog default (128)


async def test_every_call_up_to_the_cap_reaches_the_model(
    start_media_host: StartMediaHost, model: FakeRealtime
) -> None:
    host = await start_media_host(MAX_CONCURRENT_CALLS=str(CALLS), MEDIA_IDLE_SECONDS="120")
    legs = await asyncio.gather(*(host.call() for _ in range(CALLS)))
    try:
        async with asyncio.timeout(30):
            while len(model.sockets) < CALLS:
                await asyncio.sleep(0.05)
            for socket in model.sockets:  # each one a live, configured session
                await socket.wait_for("session.update")
        assert model.upgrade_attempts == CALLS  # none waited for a pooled connection and retried
        assert len(host.state.calls) == CALLS
        assert not any(leg.closed for leg in legs)
    finally:
        for leg in legs:
            with contextlib.suppress(Exception):
                await leg.close()


def test_the_open_file_limit_is_lifted_to_what_the_system_allows() -> None:
    """At two sockets per call a soft limit of 1024 files would cap a replica near 500 calls."""
    script = "from media_host.app import raise_open_file_limit; print(raise_open_file_limit())"
    ran = subprocess.run(
        ["bash", "-c", f"ulimit -Sn 256 && {sys.executable} -c '{script}'"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert int(ran.stdout) == resource.getrlimit(resource.RLIMIT_NOFILE)[1] > 256
