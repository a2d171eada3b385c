"""Load bench for the media host: N simulated ACS calls against a fake realtime model, on loopback.

    python -m bench.media_load --calls 50 --seconds 10 [--json out.json]

The media host runs as a separate process (`python -m media_host`, its real command), so its CPU is
measured on its own pid with psutil and the load generator's CPU is not counted. Everything else
lives in this process, on one monotonic clock: the ACS token issuer, the Call Automation stand-in,
a small scripted realtime model, and N `MediaLeg`s streaming 24 kHz audio in real time.

Phases (each `--seconds` long, after a short warm-up):
  1. inbound only: every caller streams 20 ms frames, the model stays silent.
  2. inbound + speaking: the model also speaks into every call without a break (100 ms deltas every
     100 ms after a 300 ms head start, so the host's queue never runs dry and pacing is its own).
  3. latency probes: a single 20 ms delta per call every >= 100 ms, each sent into an idle playback
     queue, so pacing lead and queueing do not count as latency.

Frames are tagged (magic, call, sequence number in the first 12 bytes). At 24 kHz the host passes
audio through byte-exact in both directions, so each frame is recognised on the far side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import signal
import socket
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import aiohttp
import psutil  # type: ignore[import-untyped]
from aiohttp import web

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from emulators.serving import serve

REPO = Path(__file__).resolve().parent.parent
AUDIENCE = "0b5e1d7c-3a2f-4c6e-8d9a-7f1e2b3c4d5e"  # the ACS immutable resource id the host expects
MODEL_KEY = "bench-model-key"
RATE = 24_000  # ACS `pcm24KMono`, the production default: a pass-through in both directions
FRAME_S = 0.020
FRAME_BYTES = RATE // 50 * 2  # 960
FRAME_B64_CHARS = 4 * FRAME_BYTES // 3  # 1280
DELTA_FRAMES = 5  # phase 2: 100 ms per delta
DELTA_S = DELTA_FRAMES * FRAME_S
HEAD_START_DELTAS = 3  # phase 2: 300 ms sent at once, as the real model runs ahead of real time
PROBE_PERIOD_S = 0.100  # phase 3: >= 100 ms between probes of one call
IDLE_MARGIN_S = 0.025  # a probe waits until the previous probe frame has played out (+ margin)
GAP_SKIP_FRAMES = 5  # phase 2: the first frames of a call go out in a burst (the lead), not paced
WARMUP_S = 1.0
DRAIN_TIMEOUT_S = 3.0

TAG = struct.Struct("<2sHI4x")  # magic, call index, sequence number: 12 bytes = 16 base64 chars
IN_MAGIC = b"IN"  # caller -> model
SPEAK_MAGIC = b"O2"  # model -> caller, phase 2
PROBE_MAGIC = b"O3"  # model -> caller, phase 3
SILENCE = bytes(FRAME_BYTES)


def tagged_frame(magic: bytes, call: int, seq: int) -> bytes:
    return TAG.pack(magic, call, seq) + SILENCE[TAG.size :]


def read_tag(b64: str) -> tuple[bytes, int, int] | None:
    try:
        raw = binascii.a2b_base64(b64[:16])
    except binascii.Error:
        return None
    if len(raw) < TAG.size:
        return None
    magic, call, seq = TAG.unpack_from(raw)
    return bytes(magic), int(call), int(seq)


def now() -> float:
    return time.monotonic()


async def sleep_until(deadline: float) -> None:
    delay = deadline - now()
    if delay > 0:
        await asyncio.sleep(delay)


# -- the ACS side ---------------------------------------------------------------------------------
@dataclass
class BenchLeg(MediaLeg):
    """A `MediaLeg` that keeps only what the bench needs of each message (arrival time and tag)."""

    index: int = 0
    in_sent_at: list[float] = field(default_factory=list)  # by sequence number
    send_lag: list[tuple[float, float]] = field(default_factory=list)  # (due, how late it was sent)
    out_frames: list[tuple[float, bytes, int]] = field(default_factory=list)  # (arrival, magic, seq)
    bad_frames: Counter[str] = field(default_factory=Counter)
    other_kinds: Counter[str] = field(default_factory=Counter)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            at = now()
            message = json.loads(msg.data)
            kind = message.get("Kind")
            if kind != "AudioData":
                self.other_kinds[str(kind)] += 1
                continue
            data = message["AudioData"]["Data"]
            if len(data) != FRAME_B64_CHARS:
                self.bad_frames["wrong_size"] += 1
            tag = read_tag(data)
            if tag is None or tag[0] not in (SPEAK_MAGIC, PROBE_MAGIC) or tag[1] != self.index:
                self.bad_frames["untagged"] += 1
                continue
            self.out_frames.append((at, tag[0], tag[2]))

    async def send_tagged(self, seq: int) -> float:
        """One 20 ms `AudioData` shaped like `MediaLeg.send_audio`; returns the time it was sent."""
        text = json.dumps(
            {
                "kind": "AudioData",
                "audioData": {
                    "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "participantRawID": "4:+14255550123",
                    "data": base64.b64encode(tagged_frame(IN_MAGIC, self.index, seq)).decode("ascii"),
                    "silent": False,
                },
            }
        )
        sent = now()
        await self.send_raw(text)
        self.sent_frames += 1
        return sent


async def stream_caller(leg: BenchLeg, start: float, stop: asyncio.Event, max_frames: int) -> None:
    """Real-time 20 ms frames on an absolute schedule, like ACS, until `stop` (or `max_frames`)."""
    for seq in range(max_frames):
        if stop.is_set():
            return
        due = start + seq * FRAME_S
        await sleep_until(due)
        if stop.is_set():
            return
        leg.send_lag.append((due, now() - due))
        try:
            leg.in_sent_at.append(await leg.send_tagged(seq))
        except ConnectionError:
            return


# -- the model side -------------------------------------------------------------------------------
@dataclass
class ModelConn:
    """One realtime socket the media host opened; `call` is learnt from the first tagged append."""

    ws: web.WebSocketResponse
    call: int | None = None
    in_recv: list[tuple[float, int]] = field(default_factory=list)  # (arrival, seq)
    untagged_appends: int = 0
    foreign_appends: int = 0  # tagged with another call's index: crossed wires in the host
    other_events: Counter[str] = field(default_factory=Counter)
    out_sent: dict[int, float] = field(default_factory=dict)  # seq -> time its delta was sent
    out_seq: int = 0

    async def send(self, event: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(json.dumps(event))

    async def response_created(self, response_id: str) -> None:
        await self.send(
            {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
        )

    async def delta(self, response_id: str, item_id: str, magic: bytes, frames: int) -> None:
        assert self.call is not None
        seqs = range(self.out_seq, self.out_seq + frames)
        self.out_seq += frames
        pcm = b"".join(tagged_frame(magic, self.call, seq) for seq in seqs)
        text = json.dumps(
            {
                "type": "response.output_audio.delta",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(pcm).decode("ascii"),
            }
        )
        if self.ws.closed:
            return
        sent = now()
        for seq in seqs:
            self.out_sent[seq] = sent
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(text)

    async def done(self, response_id: str, item_id: str) -> None:
        await self.send(
            {"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id}
        )
        await self.send(
            {"type": "response.done", "response": {"id": response_id, "status": "completed", "output": []}}
        )


class BenchModel:
    """A minimal GA realtime endpoint (api-key auth) that records tagged appends and speaks on cue."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.conns: list[ModelConn] = []
        self.by_call: dict[int, ModelConn] = {}
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def serve(self) -> str:
        app = web.Application()
        app.router.add_get("/openai/v1/realtime", self._handle)
        self._runner, self.url = await serve(app)
        return self.url

    async def close(self) -> None:
        for conn in self.conns:
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("api-key") != self.api_key:
            self.refused += 1
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = ModelConn(ws)
        self.conns.append(conn)
        await conn.send({"type": "session.created", "session": {"id": f"sess_{len(self.conns)}"}})
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            at = now()
            event = json.loads(msg.data)
            kind = event.get("type")
            if kind == "input_audio_buffer.append":
                self._on_append(conn, at, str(event.get("audio", "")))
            elif kind == "session.update":
                await conn.send({"type": "session.updated", "session": event["session"]})
            else:
                conn.other_events[str(kind)] += 1
        return ws

    def _on_append(self, conn: ModelConn, at: float, audio: str) -> None:
        tag = read_tag(audio)
        if tag is None or tag[0] != IN_MAGIC:
            conn.untagged_appends += 1
            return
        _, call, seq = tag
        if conn.call is None and call not in self.by_call:
            conn.call = call
            self.by_call[call] = conn
        if call != conn.call:
            conn.foreign_appends += 1
            return
        conn.in_recv.append((at, seq))


async def speak_continuously(conn: ModelConn, start: float, end: float) -> None:
    """Phase 2: one response that never pauses; stops sending at `end`, then closes the response."""
    assert conn.call is not None
    response_id, item_id = f"resp_speak_{conn.call}", f"item_speak_{conn.call}"
    await sleep_until(start)
    await conn.response_created(response_id)
    max_deltas = int((end - start) / DELTA_S) + HEAD_START_DELTAS + 1
    for k in range(max_deltas):
        due = start + max(0, k - HEAD_START_DELTAS + 1) * DELTA_S
        if due >= end:
            break
        await sleep_until(due)
        await conn.delta(response_id, item_id, SPEAK_MAGIC, DELTA_FRAMES)
    await conn.done(response_id, item_id)


async def probe_latency(conn: ModelConn, leg: BenchLeg, start: float, end: float) -> int:
    """Phase 3: 20 ms deltas into an idle queue, >= PROBE_PERIOD_S apart; returns probes delayed."""
    assert conn.call is not None
    delayed = 0
    last_sent = -math.inf
    for k in range(int((end - start) / PROBE_PERIOD_S) + 1):
        due = max(start + k * PROBE_PERIOD_S, last_sent + PROBE_PERIOD_S)
        if due >= end:
            break
        await sleep_until(due)
        # idle: everything sent so far has reached the caller and its last frame has played out
        for _ in range(200):  # bounded: at most ~1 s
            arrived = leg.out_frames[-1][0] if leg.out_frames else -math.inf
            if len(leg.out_frames) >= conn.out_seq and now() >= arrived + IDLE_MARGIN_S:
                break
            await asyncio.sleep(0.005)
        else:
            delayed += 1  # never idle within 1 s: probe anyway and count it
        if now() >= end:
            break
        response_id = f"resp_probe_{conn.call}_{k}"
        item_id = f"item_probe_{conn.call}_{k}"
        await conn.response_created(response_id)
        last_sent = now()
        await conn.delta(response_id, item_id, PROBE_MAGIC, 1)
        await conn.done(response_id, item_id)
    return delayed


# -- the media host process -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HOST_SETTING_PREFIXES = ("ACS_", "AZURE_", "AOAI_", "MEDIA_", "MODEL_")
HOST_SETTINGS = ("PORT", "HOST", "LOG_LEVEL", "MAX_CONCURRENT_CALLS", "MAX_CALL_SECONDS", "TRANSFER_TARGET")


def host_env(
    port: int, issuer: AcsTokenIssuer, acs: CallAutomationStandIn, model_url: str, calls: int
) -> dict[str, str]:
    """This process's environment minus any media host setting, plus the bench's settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(HOST_SETTING_PREFIXES) and k not in HOST_SETTINGS and k != "TOOL_TIMEOUT_SECONDS"
    }
    env.update(
        {
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "ACS_RESOURCE_ID": AUDIENCE,
            "ACS_JWT_ISSUER": issuer.issuer,
            "ACS_OPENID_CONFIG_URL": issuer.openid_config_url,
            "AZURE_COMMUNICATION_CONNECTION_STRING": acs.connection_string,
            "AZURE_OPENAI_ENDPOINT": model_url,
            "AZURE_OPENAI_API_KEY": MODEL_KEY,
            "MODEL_CONNECT_BACKOFF_SECONDS": "0.05",
            "MAX_CONCURRENT_CALLS": str(calls + 10),
            "MEDIA_DRAIN_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class HostFailed(RuntimeError):
    """The media host process did not start."""


class HostProcess:
    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: Any = None  # psutil.Process
        self.exit_code: int | None = None
        self._out: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._err: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115

    async def start(self, timeout: float = 20.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "media_host",
            cwd=REPO,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = now() + timeout
        last = "no answer yet"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            while now() < deadline:
                if self.proc.returncode is not None:
                    raise HostFailed(f"media host exited with code {self.proc.returncode} during start-up")
                try:
                    async with http.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            return
                        last = f"/readyz answered {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.05)
        raise HostFailed(f"media host not ready within {timeout:.0f} s ({last})")

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user) + float(times.system)

    def rss_mb(self) -> float:
        return float(self.ps.memory_info().rss) / 2**20

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; kill if it will not go. Returns its exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.returncode is not None:
            self.exit_code = None if self.proc is None else self.proc.returncode
            return self.exit_code
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                self.exit_code = await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            self.exit_code = None
        return self.exit_code

    def output(self) -> tuple[str, str]:
        texts = []
        for f in (self._out, self._err):
            f.seek(0)
            texts.append(f.read().decode("utf-8", "replace"))
        return texts[0], texts[1]

    def close(self) -> None:
        self._out.close()
        self._err.close()


# -- measuring ------------------------------------------------------------------------------------
@dataclass
class Snapshot:
    at: float
    host_cpu: float
    bench_cpu: float
    steal: float  # CPU time the hypervisor gave to others, all CPUs (Linux; 0 elsewhere)
    in_sent: int
    in_recv: int
    out_sent: int
    out_recv: int


@dataclass
class Phase:
    name: str
    start: Snapshot
    end: Snapshot

    @property
    def wall(self) -> float:
        return self.end.at - self.start.at

    @property
    def host_cpu(self) -> float:
        return self.end.host_cpu - self.start.host_cpu

    @property
    def bench_cpu(self) -> float:
        return self.end.bench_cpu - self.start.bench_cpu

    @property
    def steal_pct(self) -> float:
        return 100 * (self.end.steal - self.start.steal) / (self.wall * (os.cpu_count() or 1))

    @property
    def in_frames(self) -> int:
        return self.end.in_recv - self.start.in_recv

    @property
    def out_frames(self) -> int:
        return self.end.out_recv - self.start.out_recv


def percentiles(values: Sequence[float]) -> dict[str, float | int | None]:
    """Nearest-rank p50/p99 and max, in ms, of values in seconds."""
    ordered = sorted(values)
    n = len(ordered)

    def rank(q: float) -> float | None:
        return round(ordered[max(0, math.ceil(q / 100 * n) - 1)] * 1000, 3) if n else None

    return {"samples": n, "p50_ms": rank(50), "p99_ms": rank(99), "max_ms": rank(100)}


async def wait_until(condition: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = now() + timeout
    while not condition():
        if now() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


async def loop_lag_monitor(stop: asyncio.Event, lags: list[tuple[float, float]], max_samples: int) -> None:
    """How late this process's own event loop wakes up: it bounds what its latency figures can show."""
    for _ in range(max_samples):
        if stop.is_set():
            return
        due = now() + 0.010
        await asyncio.sleep(0.010)
        lags.append((due, now() - due))


async def gather_bounded(aws: Sequence[Awaitable[Any]], timeout: float) -> list[Any]:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        async with asyncio.timeout(timeout):
            return await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# -- the run --------------------------------------------------------------------------------------
class Bench:
    def __init__(self, calls: int, seconds: float) -> None:
        self.calls = calls
        self.seconds = seconds
        self.issuer = AcsTokenIssuer()
        self.acs = CallAutomationStandIn()
        self.model = BenchModel(MODEL_KEY)
        self.host: HostProcess | None = None
        self.legs: list[BenchLeg] = []
        self.phases: dict[str, Phase] = {}
        self.stop_streams = asyncio.Event()
        self.stream_tasks: list[asyncio.Task[None]] = []
        self.loop_lags: list[tuple[float, float]] = []
        self.probes_delayed = 0
        self.notes: list[str] = []
        self.host_rss_mb: float | None = None

    def snapshot(self) -> Snapshot:
        assert self.host is not None
        conns = self.model.conns
        return Snapshot(
            at=now(),
            host_cpu=self.host.cpu_seconds(),
            bench_cpu=time.process_time(),
            steal=float(getattr(psutil.cpu_times(), "steal", 0.0)),
            in_sent=sum(len(leg.in_sent_at) for leg in self.legs),
            in_recv=sum(len(c.in_recv) for c in conns),
            out_sent=sum(len(c.out_sent) for c in conns),
            out_recv=sum(len(leg.out_frames) for leg in self.legs),
        )

    def outbound_settled(self) -> bool:
        return sum(len(leg.out_frames) for leg in self.legs) >= sum(len(c.out_sent) for c in self.model.conns)

    def inbound_settled(self) -> bool:
        return sum(len(c.in_recv) for c in self.model.conns) >= sum(len(leg.in_sent_at) for leg in self.legs)

    async def run(self) -> dict[str, Any]:
        await self.issuer.serve()
        await self.acs.serve()
        await self.model.serve()
        port = free_port()
        self.host = HostProcess(host_env(port, self.issuer, self.acs, self.model.url, self.calls), port)
        await self.host.start()
        lag_task = asyncio.create_task(
            loop_lag_monitor(self.stop_streams, self.loop_lags, int((3 * self.seconds + 60) / 0.01))
        )
        try:
            await self._connect_calls()
            await asyncio.sleep(WARMUP_S)
            # a collection of this process's long-lived records would stall its loop for tens of ms,
            # and that would show up as media host latency: no cyclic GC while measuring
            gc.collect()
            gc.freeze()
            gc.disable()
            await self._phase("inbound", self._idle)
            await self._phase("speaking", self._speaking, settle=self.outbound_settled)
            await self._phase("probes", self._probes, settle=self.outbound_settled)
        finally:
            gc.enable()
            gc.unfreeze()
            self.stop_streams.set()
            await asyncio.gather(*self.stream_tasks, lag_task, return_exceptions=True)
        if not await wait_until(self.inbound_settled, DRAIN_TIMEOUT_S):
            self.notes.append(f"inbound frames still missing after {DRAIN_TIMEOUT_S:.0f} s")
        self.host_rss_mb = self.host.rss_mb()
        return self.figures()

    async def _connect_calls(self) -> None:
        assert self.host is not None
        url = self.host.base.replace("http://", "ws://") + "/ws/media"
        self.legs = [BenchLeg(sample_rate=RATE, index=i) for i in range(self.calls)]

        async def dial(leg: BenchLeg) -> None:
            token = self.issuer.sign(audience=AUDIENCE, lifetime_seconds=3600)
            await leg.connect(url, token)

        await gather_bounded([dial(leg) for leg in self.legs], timeout=30.0)
        base = now() + 0.05
        max_frames = int((3 * self.seconds + 60) / FRAME_S)
        for leg in self.legs:  # callers are not in step: spread their frames over the 20 ms
            start = base + leg.index * FRAME_S / self.calls
            self.stream_tasks.append(
                asyncio.create_task(stream_caller(leg, start, self.stop_streams, max_frames))
            )
        if not await wait_until(lambda: len(self.model.by_call) == self.calls, timeout=15.0):
            raise RuntimeError(
                f"only {len(self.model.by_call)}/{self.calls} calls reached the model "
                f"({len(self.model.conns)} model sockets opened, {self.model.refused} refused)"
            )

    async def _phase(
        self,
        name: str,
        body: Callable[[float, float], Awaitable[None]],
        settle: Callable[[], bool] | None = None,
    ) -> None:
        start = self.snapshot()
        await body(start.at, start.at + self.seconds)
        if settle is not None and not await wait_until(settle, DRAIN_TIMEOUT_S):
            self.notes.append(f"phase {name}: outbound frames still missing after {DRAIN_TIMEOUT_S:.0f} s")
        self.phases[name] = Phase(name, start, self.snapshot())

    async def _idle(self, start: float, end: float) -> None:
        await sleep_until(end)

    async def _speaking(self, start: float, end: float) -> None:
        speakers = []
        for call, conn in sorted(self.model.by_call.items()):
            offset = call * DELTA_S / self.calls  # the model's responses are not in step either
            speakers.append(speak_continuously(conn, start + offset, end))
        await gather_bounded(speakers, timeout=end - now() + 5.0)

    async def _probes(self, start: float, end: float) -> None:
        probes = []
        for call, conn in sorted(self.model.by_call.items()):
            offset = call * PROBE_PERIOD_S / self.calls
            probes.append(probe_latency(conn, self.legs[call], start + offset, end))
        self.probes_delayed = sum(await gather_bounded(probes, timeout=end - now() + 5.0))

    # -- figures ----------------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        p1, p2, p3 = (self.phases[n] for n in ("inbound", "speaking", "probes"))
        inbound_us = p1.host_cpu / p1.in_frames * 1e6 if p1.in_frames else None
        outbound_us = None
        if inbound_us is not None and p2.out_frames:
            outbound_us = (p2.host_cpu - inbound_us / 1e6 * p2.in_frames) / p2.out_frames * 1e6

        inbound_latency: dict[str, list[float]] = {n: [] for n in self.phases}
        for conn in self.model.conns:
            if conn.call is None:
                continue
            sent_at = self.legs[conn.call].in_sent_at
            for at, seq in conn.in_recv:
                if seq >= len(sent_at):
                    continue
                sent = sent_at[seq]
                for phase in self.phases.values():
                    if phase.start.at <= sent < phase.end.at:
                        inbound_latency[phase.name].append(at - sent)

        def measured(at: float) -> bool:
            return p1.start.at <= at < p3.end.at

        outbound_latency: list[float] = []
        gaps: list[float] = []
        out_order_errors = 0
        for leg in self.legs:
            model_conn = self.model.by_call.get(leg.index)
            if model_conn is None:
                continue
            speaking = [(at, seq) for at, magic, seq in leg.out_frames if magic == SPEAK_MAGIC]
            out_order_errors += sum(1 for a, b in itertools.pairwise(speaking) if b[1] <= a[1])
            steady = [at for at, _ in speaking[GAP_SKIP_FRAMES:]]
            gaps.extend(b - a for a, b in itertools.pairwise(steady))
            for at, magic, seq in leg.out_frames:
                if magic == PROBE_MAGIC and seq in model_conn.out_sent:
                    outbound_latency.append(at - model_conn.out_sent[seq])

        in_sent = sum(len(leg.in_sent_at) for leg in self.legs)
        in_recv_unique = sum(len({seq for _, seq in c.in_recv}) for c in self.model.conns)
        in_recv = sum(len(c.in_recv) for c in self.model.conns)
        out_sent = sum(len(c.out_sent) for c in self.model.conns)
        out_recv_unique = sum(len({(m, seq) for _, m, seq in leg.out_frames}) for leg in self.legs)
        out_recv = sum(len(leg.out_frames) for leg in self.legs)
        bad = Counter[str]()
        for leg in self.legs:
            bad.update(leg.bad_frames)
        other_acs = Counter[str]()
        for leg in self.legs:
            other_acs.update(leg.other_kinds)

        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "calls": self.calls,
            "seconds_per_phase": self.seconds,
            "sample_rate": RATE,
            "phases": {
                p.name: {
                    "wall_s": round(p.wall, 3),
                    "host_cpu_s": round(p.host_cpu, 3),
                    "host_cpu_pct_of_one_core": round(100 * p.host_cpu / p.wall, 1),
                    "bench_cpu_pct_of_one_core": round(100 * p.bench_cpu / p.wall, 1),
                    "machine_steal_pct": round(p.steal_pct, 1),
                    "inbound_frames": p.in_frames,
                    "outbound_frames": p.out_frames,
                }
                for p in (p1, p2, p3)
            },
            "cpu_us_per_frame": {
                "inbound": None if inbound_us is None else round(inbound_us, 1),
                "outbound": None if outbound_us is None else round(outbound_us, 1),
            },
            "latency": {
                "inbound_p1": percentiles(inbound_latency["inbound"]),
                "inbound_p2": percentiles(inbound_latency["speaking"]),
                "inbound_p3": percentiles(inbound_latency["probes"]),
                "outbound_p3_idle_queue": percentiles(outbound_latency),
            },
            "outbound_gap_p2": percentiles(gaps),
            "frames": {
                "inbound_sent": in_sent,
                "inbound_received": in_recv,
                "inbound_lost": in_sent - in_recv_unique,
                "inbound_duplicated": in_recv - in_recv_unique,
                "outbound_sent": out_sent,
                "outbound_received": out_recv,
                "outbound_lost": out_sent - out_recv_unique,
                "outbound_duplicated": out_recv - out_recv_unique,
                "outbound_out_of_order": out_order_errors,
                "outbound_bad": dict(bad),
                "untagged_appends": sum(c.untagged_appends for c in self.model.conns),
                "foreign_appends": sum(c.foreign_appends for c in self.model.conns),
                "acs_other_kinds": dict(other_acs),
            },
            "probes_not_idle_within_1s": self.probes_delayed,
            "bench_self": {
                "loop_lag": percentiles([lag for due, lag in self.loop_lags if measured(due)]),
                "send_lateness": percentiles(
                    [lag for leg in self.legs for due, lag in leg.send_lag if measured(due)]
                ),
            },
            "host": {
                "model_sockets": len(self.model.conns),
                "rss_mb_at_end": None if self.host_rss_mb is None else round(self.host_rss_mb, 1),
                "exit_code": None,
            },
            "notes": self.notes,
        }

    async def close(self) -> None:
        self.stop_streams.set()
        for task in self.stream_tasks:
            task.cancel()
        await asyncio.gather(*self.stream_tasks, return_exceptions=True)
        for leg in self.legs:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await leg.close()
        if self.host is not None:
            await self.host.stop()
        await self.model.close()
        await self.acs.close()
        await self.issuer.close()


# -- output ---------------------------------------------------------------------------------------
def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(fig: dict[str, Any]) -> str:
    lines = [
        f"media host load: {fig['calls']} calls x {fig['seconds_per_phase']:g} s/phase, 24 kHz, "
        f"{fig['machine']['cpus']} cpus, {fig['date']}",
        "",
        f"{'phase':<22}{'wall s':>7}{'host cpu s':>11}{'host %core':>11}{'bench %core':>12}"
        f"{'in frames':>11}{'out frames':>11}{'steal':>7}",
    ]
    titles = {"inbound": "1 inbound only", "speaking": "2 inbound + speaking", "probes": "3 latency probes"}
    for name, p in fig["phases"].items():
        lines.append(
            f"{titles[name]:<22}{p['wall_s']:>7.1f}{p['host_cpu_s']:>11.2f}{p['host_cpu_pct_of_one_core']:>10.1f}%"
            f"{p['bench_cpu_pct_of_one_core']:>11.1f}%{p['inbound_frames']:>11}{p['outbound_frames']:>11}"
            f"{p['machine_steal_pct']:>6.1f}%"
        )
    cpu = fig["cpu_us_per_frame"]
    lines += [
        "",
        f"host CPU per frame: inbound {_ms(cpu['inbound'])} us, outbound {_ms(cpu['outbound'])} us",
        "",
        f"{'added by the media host':<34}{'samples':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    rows = [
        ("inbound latency, phase 1", fig["latency"]["inbound_p1"]),
        ("inbound latency, phase 2", fig["latency"]["inbound_p2"]),
        ("inbound latency, phase 3", fig["latency"]["inbound_p3"]),
        ("outbound latency, idle queue (3)", fig["latency"]["outbound_p3_idle_queue"]),
        ("outbound frame gap at ACS (2)", fig["outbound_gap_p2"]),
    ]
    for title, s in rows:
        lines.append(
            f"{title:<34}{s['samples']:>9}{_ms(s['p50_ms']):>9}{_ms(s['p99_ms']):>9}{_ms(s['max_ms']):>9}"
        )
    f = fig["frames"]
    lines += [
        "",
        f"frames inbound:  sent {f['inbound_sent']}, received {f['inbound_received']}, "
        f"lost {f['inbound_lost']}, duplicated {f['inbound_duplicated']}",
        f"frames outbound: sent {f['outbound_sent']}, received {f['outbound_received']}, "
        f"lost {f['outbound_lost']}, duplicated {f['outbound_duplicated']}, "
        f"out of order {f['outbound_out_of_order']}",
    ]
    oddities = {
        k: v
        for k, v in f.items()
        if k in ("outbound_bad", "untagged_appends", "foreign_appends", "acs_other_kinds") and v
    }
    if oddities or fig["probes_not_idle_within_1s"]:
        lines.append(f"oddities: {oddities} probes not idle within 1 s: {fig['probes_not_idle_within_1s']}")
    b = fig["bench_self"]
    lines.append(
        f"bench itself: loop lag p99 {_ms(b['loop_lag']['p99_ms'])} ms (max {_ms(b['loop_lag']['max_ms'])}), "
        f"send lateness p99 {_ms(b['send_lateness']['p99_ms'])} ms"
    )
    h = fig["host"]
    lines.append(f"host: rss {h['rss_mb_at_end']} MB, exit code {h['exit_code']}")
    lines.extend(f"note: {n}" for n in fig["notes"])
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    bench = Bench(args.calls, args.seconds)
    figures: dict[str, Any] | None = None
    failure: str | None = None
    try:
        async with asyncio.timeout(3 * args.seconds + 120):  # a hard bound on the whole run
            figures = await bench.run()
    except HostFailed as exc:
        failure = str(exc)
    except Exception as exc:  # report it with the host's output, after everything is torn down
        failure = "".join(traceback.format_exception(exc)).rstrip()
    finally:
        await bench.close()
    host = bench.host
    exit_code = None if host is None else host.exit_code
    try:
        if failure is not None or exit_code != 0:
            print(f"FAILED: {failure or f'media host exit code {exit_code} (expected 0)'}", file=sys.stderr)
            if host is not None:
                out, err = host.output()
                print(f"--- media host stderr ---\n{err[-8000:]}", file=sys.stderr)
                print(f"--- media host stdout ---\n{out[-4000:]}", file=sys.stderr)
        if figures is None:
            return 1, None
        figures["host"]["exit_code"] = exit_code
        if host is not None:
            out, err = host.output()
            log_lines = [line for line in (out + err).splitlines() if line.strip()]
            figures["host"]["log_lines"] = len(log_lines)
            if log_lines:
                figures["notes"].append(
                    f"media host logged {len(log_lines)} lines, first: {log_lines[0][:200]}"
                )
        print(render(figures))
        return (0 if exit_code == 0 else 1), figures
    finally:
        if host is not None:
            host.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.media_load", description="Load bench for the media host (see bench/README.md)."
    )
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (1-500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each of the 3 phases (1-300)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 500:
        parser.error("--calls must be between 1 and 500")
    if not 1 <= args.seconds <= 300:
        parser.error("--seconds must be between 1 and 300")
    code, figures = asyncio.run(amain(args))
    if args.json and figures is not None:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main())
