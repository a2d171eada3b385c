"""`python -m media_host`, the container's command, as a real process: start-up checks and SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from tests.conftest import AUDIENCE, media_env
from tests.fake_realtime import FakeRealtime
from tests.signals import tone

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MediaHostProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {"PATH": os.environ.get("PATH", ""), "HOST": "127.0.0.1", "PORT": str(self.port), **env}
        self.output = ""
        self.proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media_host", cwd=ROOT, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.output += line.decode()

    async def ready(self, timeout: float = 15.0) -> None:
        async with aiohttp.ClientSession() as http, asyncio.timeout(timeout):
            while True:
                assert self.proc is not None and self.proc.returncode is None, self.output
                try:
                    async with http.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)

    async def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            if self._reader is not None:
                await self._reader
        return code

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def process_env(
    issuer: AcsTokenIssuer, acs: CallAutomationStandIn, model: FakeRealtime
) -> dict[str, str]:
    return media_env(issuer, acs, model)


@pytest.fixture
async def spawn() -> AsyncIterator[list[MediaHostProcess]]:
    started: list[MediaHostProcess] = []
    yield started
    for process in started:
        await process.stop()


async def launch(spawn: list[MediaHostProcess], env: dict[str, str]) -> MediaHostProcess:
    process = MediaHostProcess(env)
    spawn.append(process)
    await process.start()
    return process


async def test_missing_and_malformed_settings_stop_startup_naming_each(spawn: list[MediaHostProcess]) -> None:
    process = await launch(spawn, {"MAX_CONCURRENT_CALLS": "many", "AOAI_VOICE": "robot"})
    assert await process.wait() == 2
    for name in (
        "ACS_RESOURCE_ID is required",
        "AZURE_OPENAI_ENDPOINT is required",
        "ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING is required",
        "MAX_CONCURRENT_CALLS='many' is not a number",
        "AOAI_VOICE='robot' must be one of",
    ):
        assert name in process.output


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_extra_tools_that_do_not_load_stop_startup_in_one_line(
    spawn: list[MediaHostProcess], process_env: dict[str, str], workers: str
) -> None:
    env = {**process_env, "MEDIA_EXTRA_TOOLS": "no_such_package.tools:factory", "MEDIA_WORKERS": workers}
    process = await launch(spawn, env)
    assert await process.wait() == 2
    assert process.output.strip() == (
        "MEDIA_EXTRA_TOOLS='no_such_package.tools:factory' does not load: "
        "ModuleNotFoundError: No module named 'no_such_package'"
    )


async def call(process: MediaHostProcess, issuer: AcsTokenIssuer) -> MediaLeg:
    leg = MediaLeg()
    await leg.connect(f"{process.url}/ws/media", issuer.sign(audience=AUDIENCE))
    return leg


async def test_sigterm_drains_active_calls(
    spawn: list[MediaHostProcess], process_env: dict[str, str], issuer: AcsTokenIssuer, model: FakeRealtime
) -> None:
    process = await launch(spawn, {**process_env, "MEDIA_DRAIN_SECONDS": "30"})
    await process.ready()
    leg = await call(process, issuer)
    socket = await model.socket()
    await socket.wait_for("response.create")

    process.terminate()
    async with aiohttp.ClientSession() as http, asyncio.timeout(5):
        while (await http.get(f"{process.url}/readyz")).status != 503:
            await asyncio.sleep(0.02)
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await call(process, issuer)
    assert refused.value.status == 503

    speech = tone(600, 0.2, 24_000)
    await leg.stream(speech, realtime=False)  # the active call is still served while draining
    assert await socket.wait_audio_bytes(len(speech)) == speech
    await leg.close()  # the caller hangs up: nothing left to wait for
    assert await process.wait(timeout=10) == 0
    assert "draining: 1 calls in progress" in process.output


async def test_drain_deadline_hangs_up_remaining_calls(
    spawn: list[MediaHostProcess],
    process_env: dict[str, str],
    issuer: AcsTokenIssuer,
    model: FakeRealtime,
    acs: CallAutomationStandIn,
) -> None:
    process = await launch(spawn, {**process_env, "MEDIA_DRAIN_SECONDS": "1"})
    await process.ready()
    leg = await call(process, issuer)
    socket = await model.socket()
    await socket.wait_for("response.create")

    process.terminate()
    await acs.wait_for(
        "terminate", call_connection_id=leg.call_connection_id, timeout=10
    )  # not left in silence
    await leg.wait_closed(timeout=10)
    assert leg.close_code == aiohttp.WSCloseCode.GOING_AWAY
    assert await process.wait(timeout=10) == 0
    async with asyncio.timeout(5):
        await socket.ended.wait()  # the model session was closed too
    assert "call ended: drain_timeout" in process.output
    await leg.close()


# --- MEDIA_WORKERS=2: one process per core behind the one port (media_host/workers.py) -------------

WORKERS = {"MEDIA_WORKERS": "2", "MEDIA_IDLE_SECONDS": "30"}
AUDIT_LINE = re.compile(r"\[(\d+)\] INFO audit (\{.*\})$", re.MULTILINE)


def audit_events(process: MediaHostProcess, name: str) -> dict[str, tuple[int, dict[str, str]]]:
    """The audit events `name` logged so far, by call connection id: (worker pid, event)."""
    found = {}
    for pid, text in AUDIT_LINE.findall(process.output):
        event = json.loads(text)
        if event.get("event") == name:
            found[event["call_connection_id"]] = (int(pid), event)
    return found


async def logged(process: MediaHostProcess, pattern: str, count: int, timeout: float = 10.0) -> list[str]:
    async with asyncio.timeout(timeout):
        while len(found := re.findall(pattern, process.output)) < count:
            await asyncio.sleep(0.02)
    return found


LISTENING = r"\[(\d+)\] INFO media_host.app media host listening"


async def both_workers_ready(process: MediaHostProcess) -> None:
    """/readyz answers once one worker listens: until the other does too, it gets every connection."""
    await process.ready()
    await logged(process, LISTENING, 2)


async def calls_in_both_workers(
    process: MediaHostProcess, issuer: AcsTokenIssuer, count: int = 20
) -> dict[int, list[MediaLeg]]:
    """`count` calls, each on a new connection to the one port, by the worker that took it."""
    await both_workers_ready(process)
    legs = [await call(process, issuer) for _ in range(count)]
    async with asyncio.timeout(10):
        while len(connected := audit_events(process, "MediaConnected")) < count:
            await asyncio.sleep(0.02)
    by_worker: dict[int, list[MediaLeg]] = {}
    for leg in legs:
        by_worker.setdefault(connected[leg.call_connection_id][0], []).append(leg)
    assert process.proc is not None and process.proc.pid not in by_worker  # the manager serves nothing
    assert len(by_worker) == 2, {pid: len(of) for pid, of in by_worker.items()}
    return by_worker


async def readiness_becomes(process: MediaHostProcess, expected: dict[int, tuple[int, bool]]) -> None:
    """Until /readyz, over a new connection per request (the kernel spreads them), answers (status,
    ready) as `expected` from each of the workers, and from no other."""
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http,
        asyncio.timeout(10),
    ):
        answers: dict[int, tuple[int, bool]] = {}
        while answers != expected:
            async with http.get(f"{process.url}/readyz") as response:
                body = await response.json()
                assert body["workers"] == 2
                answers[body["worker"]] = (response.status, body["ready"])
            if any(answers[pid] != expected.get(pid) for pid in answers):
                answers = {}  # not there yet: start over


async def test_two_workers_serve_calls_on_one_port(
    spawn: list[MediaHostProcess], process_env: dict[str, str], issuer: AcsTokenIssuer
) -> None:
    process = await launch(spawn, {**process_env, **WORKERS})
    by_worker = await calls_in_both_workers(process, issuer)
    await readiness_becomes(process, {pid: (200, True) for pid in by_worker})
    for legs in by_worker.values():
        for leg in legs:
            await leg.close()
    process.terminate()
    assert await process.wait() == 0


async def test_sigterm_drains_the_calls_of_every_worker(
    spawn: list[MediaHostProcess],
    process_env: dict[str, str],
    issuer: AcsTokenIssuer,
    acs: CallAutomationStandIn,
) -> None:
    process = await launch(spawn, {**process_env, **WORKERS, "MEDIA_DRAIN_SECONDS": "3"})
    by_worker = await calls_in_both_workers(process, issuer)

    process.terminate()
    await readiness_becomes(process, {pid: (503, False) for pid in by_worker})  # every worker refuses
    for _ in range(4):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await call(process, issuer)
        assert refused.value.status == 503

    # In each worker one caller hangs up while draining; the others are hung up at the deadline.
    finishing = [legs.pop() for legs in by_worker.values()]
    for leg in finishing:
        await leg.close()
    for legs in by_worker.values():
        for leg in legs:
            await leg.wait_closed(timeout=10)
            assert leg.close_code == aiohttp.WSCloseCode.GOING_AWAY
            await acs.wait_for("terminate", call_connection_id=leg.call_connection_id, timeout=5)
    assert await process.wait(timeout=10) == 0

    ended = audit_events(process, "CallEnded")
    for pid, legs in by_worker.items():
        assert f"[{pid}] INFO media_host.app draining: {len(legs) + 1} calls in progress" in process.output
        for leg in legs:
            assert ended[leg.call_connection_id][0] == pid
            assert ended[leg.call_connection_id][1]["why"] == "drain_timeout"
    for leg in finishing:
        assert ended[leg.call_connection_id][1]["why"] != "drain_timeout"


async def test_a_killed_worker_is_replaced(
    spawn: list[MediaHostProcess], process_env: dict[str, str], issuer: AcsTokenIssuer
) -> None:
    process = await launch(spawn, {**process_env, **WORKERS})
    await both_workers_ready(process)
    killed, kept = await logged(process, LISTENING, 2)
    os.kill(int(killed), signal.SIGKILL)
    replacement = (await logged(process, LISTENING, 3))[2]
    assert f"Worker (pid:{killed}) was sent SIGKILL" in process.output
    await readiness_becomes(process, {int(kept): (200, True), int(replacement): (200, True)})
    process.terminate()
    assert await process.wait() == 0


@pytest.mark.parametrize("workers", ["0", "two", "1.5", "257"])
async def test_a_bad_worker_count_stops_startup_in_one_line(
    spawn: list[MediaHostProcess], process_env: dict[str, str], workers: str
) -> None:
    process = await launch(spawn, {**process_env, "MEDIA_WORKERS": workers})
    assert await process.wait() == 2
    header, problem = process.output.splitlines()  # no manager started, no traceback
    assert header == "Invalid media host settings:" and problem.startswith("  - MEDIA_WORKERS=")
