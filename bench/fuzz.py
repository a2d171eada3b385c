"""Socket-level fuzzing of the media host: concurrent calls, both sockets full of bad messages.

    python -m bench.fuzz --calls 8 --messages 100000 [--seed 1]     (make fuzz)

The media host runs as its own process (`python -m media_host`, the container's command). Each call
gets, on its ACS socket, a stream of bad messages (`bench.mutations`: wrong types, bad audio, cut
JSON, invalid UTF-8, deep nesting, huge numbers, unknown kinds, binary and oversized frames)
interleaved with valid 20 ms audio frames; on its model socket, bad server events interleaved with
valid responses whose audio comes in odd-sized deltas. Every frame carries its call, its sequence
number and bytes derived from both, so the far side can check it byte for byte.

It passes when every call is still connected, the model received exactly the caller's valid frames
in order, the caller heard exactly the model's valid audio in order, and the host exits cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bench.media_load import FILL_FRAMES, TAG, HostFailed, HostProcess, acs_settings, free_port, host_env
from bench.mutations import Bad, acs_message, model_event
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from emulators.serving import serve

AUDIENCE = "0b5e1d7c-3a2f-4c6e-8d9a-7f1e2b3c4d5e"  # what bench.media_load.host_env configures
MODEL_KEY = "bench-model-key"
FRAME_BYTES = 960  # 20 ms at 24 kHz: both directions are a byte-exact pass-through
FRAME_S = 0.020
IN_MAGIC, OUT_MAGIC, FILL_MAGIC = b"FI", b"FO", b"FF"
MAX_FRAME_BYTES = 65_536  # the host's MEDIA_MAX_FRAME_BYTES default: larger ACS messages are dropped
VALID_SHARE = 0.35  # of the messages on each socket
ROUNDS = 2


def frame(magic: bytes, call: int, seq: int) -> bytes:
    """20 ms of 'audio' only this call and sequence number produce."""
    filler = random.Random(int.from_bytes(magic) << 48 | call << 32 | seq).randbytes(FRAME_BYTES - TAG.size)
    return TAG.pack(magic, call, seq) + filler


def call_of(pcm: bytes, magic: bytes) -> int | None:
    if len(pcm) < TAG.size:
        return None
    found, call, _ = TAG.unpack_from(pcm)
    return int(call) if found == magic else None


async def send_bad(ws: aiohttp.ClientWebSocketResponse | web.WebSocketResponse, bad: Bad) -> None:
    # a raw frame: the payload may be bytes that are not UTF-8, which send_str could not carry
    await ws.send_frame(bad.payload, aiohttp.WSMsgType.BINARY if bad.binary else aiohttp.WSMsgType.TEXT)


# -- the ACS side ---------------------------------------------------------------------------------
@dataclass
class FuzzLeg(MediaLeg):
    index: int = 0
    frames_heard: list[bytes] = field(default_factory=list)  # the AudioData frames the host sent, in order
    other: Counter[str] = field(default_factory=Counter)
    sent_valid: int = 0
    sent_bad: Counter[str] = field(default_factory=Counter)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = json.loads(msg.data)
            if message.get("Kind") == "AudioData":
                audio = base64.b64decode(message["AudioData"]["Data"])  # a frame, or a chunk of them
                self.frames_heard.extend(
                    audio[i : i + self.frame_bytes] for i in range(0, len(audio), self.frame_bytes)
                )
            else:
                self.other[str(message.get("Kind"))] += 1

    async def send_valid(self) -> None:
        audio = base64.b64encode(frame(IN_MAGIC, self.index, self.sent_valid)).decode("ascii")
        await self.send_json({"kind": "AudioData", "audioData": {"data": audio, "silent": False}})
        self.sent_valid += 1

    async def send_filler(self) -> None:
        audio = base64.b64encode(frame(FILL_MAGIC, self.index, 0)).decode("ascii")
        await self.send_json({"kind": "AudioData", "audioData": {"data": audio, "silent": False}})

    async def send_fuzz(self, rng: random.Random, messages: int) -> None:
        for _ in range(messages):
            if rng.random() < VALID_SHARE:
                await self.send_valid()
            else:
                bad = acs_message(rng, MAX_FRAME_BYTES)
                assert self._ws is not None
                await send_bad(self._ws, bad)
                self.sent_bad[bad.how] += 1
            await asyncio.sleep(0)

    async def keep_alive(self, stop: asyncio.Event) -> None:
        """ACS sends a frame every 20 ms for as long as the call lasts."""
        while not stop.is_set() and not self.closed:
            await self.send_valid()
            await asyncio.sleep(FRAME_S)


# -- the model side -------------------------------------------------------------------------------
@dataclass
class FuzzConn:
    ws: web.WebSocketResponse
    call: int | None = None
    received: list[bytes] = field(default_factory=list)  # caller frames appended, in order
    foreign: int = 0  # appends of another call's audio: crossed wires
    out_seq: int = 0  # model frames sent so far
    responses: int = 0

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))


class FuzzModel:
    def __init__(self) -> None:
        self.conns: list[FuzzConn] = []
        self.by_call: dict[int, FuzzConn] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def serve(self) -> None:
        app = web.Application()
        app.router.add_get("/openai/v1/realtime", self._handle)
        self._runner, self.url = await serve(app)

    async def close(self) -> None:
        for conn in self.conns:
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("api-key") != MODEL_KEY:
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = FuzzConn(ws)
        self.conns.append(conn)
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(msg.data)
            if event["type"] == "session.update":
                await conn.send({"type": "session.updated", "session": event["session"]})
            elif event["type"] == "input_audio_buffer.append":
                self._on_append(conn, base64.b64decode(event["audio"]))
        return ws

    def _on_append(self, conn: FuzzConn, audio: bytes) -> None:
        """One append: a frame or several (MEDIA_MODEL_APPEND_MS), each checked on its own."""
        for pcm in (audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)):
            if call_of(pcm, FILL_MAGIC) is not None:
                continue
            call = call_of(pcm, IN_MAGIC)
            if conn.call is None and call is not None and call not in self.by_call:
                conn.call = call
                self.by_call[call] = conn
            if call is None or call != conn.call:
                conn.foreign += 1
                continue
            conn.received.append(pcm)


async def speak_fuzz(
    conn: FuzzConn, call: int, rng: random.Random, messages: int
) -> tuple[int, Counter[str]]:
    """Responses whose audio comes in odd-sized deltas, with bad events between any two messages.
    Returns how many valid events were sent, and the bad events by kind (frames: `conn.out_seq`)."""
    sent, bad_sent = 0, Counter[str]()

    async def maybe_bad() -> None:
        nonlocal sent
        while sent < messages and rng.random() > VALID_SHARE:
            bad = model_event(rng)
            await send_bad(conn.ws, bad)
            bad_sent[bad.how] += 1
            sent += 1
            await asyncio.sleep(0)

    while sent < messages:
        rid, iid = f"resp_{call}_{conn.responses}", f"item_{call}_{conn.responses}"
        conn.responses += 1
        frames = rng.randint(1, 4)
        pcm = b"".join(frame(OUT_MAGIC, call, conn.out_seq + k) for k in range(frames))
        conn.out_seq += frames
        cuts = sorted(rng.sample(range(1, len(pcm)), rng.randint(1, 2 * frames)))
        chunks = [pcm[a:b] for a, b in zip([0, *cuts], [*cuts, len(pcm)], strict=True)]
        await maybe_bad()
        await conn.send({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        for chunk in chunks:
            await maybe_bad()
            await conn.send({"type": "response.output_audio.delta", "response_id": rid, "item_id": iid,
                             "output_index": 0, "content_index": 0,
                             "delta": base64.b64encode(chunk).decode("ascii")})  # fmt: skip
        await conn.send({"type": "response.output_audio.done", "response_id": rid, "item_id": iid})
        await conn.send({"type": "response.done", "response": {"id": rid, "status": "completed"}})
        sent += len(chunks) + 3
    return sent - bad_sent.total(), bad_sent


# -- the run --------------------------------------------------------------------------------------
@dataclass
class Figures:
    calls: int
    seconds: float = 0.0
    acs_valid: int = 0
    acs_bad: Counter[str] = field(default_factory=Counter)
    model_valid_frames: int = 0
    model_valid_events: int = 0
    model_bad: Counter[str] = field(default_factory=Counter)
    calls_alive: int = 0
    frames_in_ok: int = 0  # caller frames the model received byte-exact, in order
    frames_out_ok: int = 0  # model frames the caller heard byte-exact, in order
    rss_before_mb: float = 0.0
    rss_after_mb: list[float] = field(default_factory=list)  # after each round
    host_exit_code: int | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return self.acs_valid + self.acs_bad.total() + self.model_valid_events + self.model_bad.total()

    @property
    def ok(self) -> bool:
        return not self.failures and self.calls_alive == self.calls and self.host_exit_code == 0

    def render(self) -> str:
        bad = self.acs_bad.total() + self.model_bad.total()
        lines = [
            f"media host fuzz: {self.calls} concurrent calls, {self.seconds:.1f} s",
            f"  messages sent          {self.messages:,} ({bad:,} bad: {self.acs_bad.total():,} on the ACS "
            f"sockets, {self.model_bad.total():,} on the model sockets)",
            f"  calls alive at the end {self.calls_alive} of {self.calls}",
            f"  caller -> model        {self.frames_in_ok:,} of {self.acs_valid:,} valid frames byte-exact, in order",
            f"  model -> caller        {self.frames_out_ok:,} of {self.model_valid_frames:,} frames byte-exact, in order",
            f"  host RSS               {self.rss_before_mb:.1f} MB before, after each half: "
            + ", ".join(f"{mb:.1f} MB" for mb in self.rss_after_mb),
            f"  host exit code         {self.host_exit_code}",
            "  bad ACS messages       " + ", ".join(f"{k} {v}" for k, v in self.acs_bad.most_common()),
            "  bad model events       " + ", ".join(f"{k} {v}" for k, v in self.model_bad.most_common()),
        ]
        lines += [f"FAILED: {f}" for f in self.failures] or ["PASSED"]
        return "\n".join(lines)


async def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def run(*, calls: int, messages: int, seed: int) -> Figures:
    """Fuzz `calls` concurrent calls with `messages` messages in all (half per direction)."""
    figures = Figures(calls)
    issuer, acs, model = AcsTokenIssuer(), CallAutomationStandIn(), FuzzModel()
    await issuer.serve()
    await acs.serve()
    await model.serve()
    port = free_port()
    host = HostProcess(host_env(port, model.url, calls, acs_settings(issuer, acs)), port)
    legs = [FuzzLeg(index=i) for i in range(calls)]
    stop = asyncio.Event()
    started = time.monotonic()
    try:
        await host.start()
        url = host.base.replace("http://", "ws://") + "/ws/media"
        for leg in legs:
            await leg.connect(url, issuer.sign(audience=AUDIENCE, lifetime_seconds=3600))
        # ACS streams from the start: the model learns which call its socket belongs to
        keep_alive = [asyncio.create_task(leg.keep_alive(stop)) for leg in legs]
        if not await wait_until(lambda: len(model.by_call) == calls, 15.0):
            raise RuntimeError(f"only {len(model.by_call)} of {calls} calls reached the model")
        figures.rss_before_mb = host.rss_mb()

        per_call = max(1, messages // (2 * calls * ROUNDS))
        for round_ in range(ROUNDS):  # RSS after each: still growing in the second means a leak
            await _fuzz_round(figures, legs, model, per_call, seed * 1000 + round_ * 100)
            figures.rss_after_mb.append(host.rss_mb())
        stop.set()
        await asyncio.gather(*keep_alive)
        for leg in legs:  # the host may hold the last valid frame for its next append: push it out
            for _ in range(FILL_FRAMES):
                await leg.send_filler()
        await _settled(legs, model)
        figures.seconds = time.monotonic() - started
        async with aiohttp.ClientSession() as http, http.get(host.base + "/readyz") as resp:
            active = (await resp.json())["active_calls"]
        figures.calls_alive = sum(not leg.closed for leg in legs) if active == calls else 0
        for leg in legs:
            _check(figures, leg, model.by_call[leg.index])
    finally:
        stop.set()
        for leg in legs:
            await leg.close()
        figures.host_exit_code = await host.stop()
        host.close()
        await model.close()
        await acs.close()
        await issuer.close()
    return figures


async def _fuzz_round(
    figures: Figures, legs: list[FuzzLeg], model: FuzzModel, per_call: int, seed: int
) -> None:
    acs_side = asyncio.gather(*(leg.send_fuzz(random.Random(seed + leg.index), per_call) for leg in legs))
    model_side = asyncio.gather(
        *(speak_fuzz(model.by_call[leg.index], leg.index, random.Random(seed + 50 + leg.index), per_call)
          for leg in legs)
    )  # fmt: skip
    _, results = await asyncio.gather(acs_side, model_side)
    for valid, bad in results:
        figures.model_valid_events += valid
        figures.model_bad.update(bad)
    await _settled(legs, model)


async def _settled(legs: list[FuzzLeg], model: FuzzModel) -> None:
    """Until what was sent has arrived: the model's audio plays in real time (ACS keeps streaming)."""
    conns = [model.by_call[leg.index] for leg in legs]
    playout = max(c.out_seq - len(leg.frames_heard) for leg, c in zip(legs, conns, strict=True)) * FRAME_S
    await wait_until(lambda: all(len(leg.frames_heard) >= c.out_seq for leg, c in zip(legs, conns, strict=True)),
                     playout + 10.0)  # fmt: skip
    targets = [leg.sent_valid for leg in legs]
    await wait_until(lambda: all(len(c.received) >= t for c, t in zip(conns, targets, strict=True)), 10.0)


def _check(figures: Figures, leg: FuzzLeg, conn: FuzzConn) -> None:
    call = leg.index
    frames_out = conn.out_seq
    figures.acs_bad.update(leg.sent_bad)
    figures.model_valid_frames += frames_out
    figures.acs_valid += leg.sent_valid
    expected_in = [frame(IN_MAGIC, call, s) for s in range(leg.sent_valid)]
    figures.frames_in_ok += _prefix_match(conn.received, expected_in)
    if conn.received != expected_in:
        figures.failures.append(f"call {call}: the model received {len(conn.received)} frames, "
                                f"{_prefix_match(conn.received, expected_in)} as sent, of {len(expected_in)}")  # fmt: skip
    expected_out = [frame(OUT_MAGIC, call, s) for s in range(frames_out)]
    figures.frames_out_ok += _prefix_match(leg.frames_heard, expected_out)
    if leg.frames_heard != expected_out:
        figures.failures.append(f"call {call}: the caller heard {len(leg.frames_heard)} frames, "
                                f"{_prefix_match(leg.frames_heard, expected_out)} as sent, of {len(expected_out)}")  # fmt: skip
    if conn.foreign:
        figures.failures.append(f"call {call}: {conn.foreign} appends of another call's audio")
    if leg.other:
        figures.failures.append(f"call {call}: the caller was sent {dict(leg.other)}")


def _prefix_match(got: Sequence[bytes], expected: Sequence[bytes]) -> int:
    n = 0
    for a, b in zip(got, expected, strict=False):
        if a != b:
            break
        n += 1
    return n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=8, help="concurrent calls (1-100)")
    parser.add_argument("--messages", type=int, default=100_000, help="messages in all, both directions")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 100 or args.messages < 2 * args.calls:
        parser.error("--calls must be 1-100 and --messages at least 2 per call")
    try:
        figures = asyncio.run(run(calls=args.calls, messages=args.messages, seed=args.seed))
    except HostFailed as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(figures.render())
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
