"""Load bench for the media host: N simulated calls (ACS or Twilio) against a fake realtime model, on
loopback.

    python -m bench.media_load [--provider acs|twilio] --calls 50 --seconds 10 [--tls]
        [--rate 16|24] [--loop uvloop|asyncio] [--json out.json]

The media host runs as a separate process (`python -m media_host`, its real command), so its CPU is
measured on its own pid with psutil and the load generator's CPU is not counted. Everything else
lives in this process, on one monotonic clock: the provider's stand-ins (ACS: the token issuer and
the Call Automation stand-in; Twilio: the REST API stand-in), a small scripted realtime model, and N
callers streaming audio in real time (ACS: `MediaLeg`s at 24 kHz on /ws/media; Twilio: lean Media
Streams at μ-law 8 kHz on /ws/twilio, signed, each with its call's token, the model on `audio/pcmu`).
With `--tls` the model serves `wss://` with a certificate made for the run, which the host trusts
through `SSL_CERT_FILE`, as Azure's model leg is TLS. `--loop` picks the host's event loop
(`MEDIA_EVENT_LOOP`).

Phases (each `--seconds` long unless its own flag says otherwise; 0 skips one), after a short warm-up:
  1. inbound only: every caller streams 20 ms frames, the model stays silent.
  2. inbound + speaking: the model also speaks into every call without a break (100 ms deltas every
     100 ms after a 300 ms head start, so the host's queue never runs dry and pacing is its own).
  3. latency probes: a single 20 ms delta per call every >= 100 ms, each sent into an idle playback
     queue, so pacing lead and queueing do not count as latency.
  4. barge-in: about once a second per call, a response of 1 s of audio, then `speech_started` 200-400 ms
     into it; the callers time the host's StopAudio / `clear` and every message of that audio.

Frames are tagged (magic, call, sequence number in the first 12 bytes). ACS at 24 kHz and Twilio with
an `audio/pcmu` model are pass-throughs in both directions, so each frame is recognised on the far side.
ACS at 16 kHz (`--rate 16`) is resampled both ways (the model speaks PCM16 at 24 kHz), which no tag
survives: frames are then known by their position in each call's stream (`Framing`), the calls are
dialled one at a time so that each model socket is known to be its caller's, and phase 4 is skipped.
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
import random
import signal
import socket
import ssl
import struct
import sys
import tempfile
import time
import traceback
from abc import ABC, abstractmethod
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar

import aiohttp
import psutil  # type: ignore[import-untyped]
from aiohttp import web

from bench.tls import LoopbackCert
from common.twilio_auth import mint_call_token, twilio_signature
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from emulators.serving import base_url, listen, serve
from emulators.twilio.media_stream import new_sid
from emulators.twilio.rest import TwilioRestStandIn
from media_host import event_loop
from media_host.app import raise_open_file_limit
from media_host.audio_paths import LegAudio, ToModel
from media_host.settings import AUDIO_CHUNKS, MediaSettings

REPO = Path(__file__).resolve().parent.parent
AUDIENCE = "0b5e1d7c-3a2f-4c6e-8d9a-7f1e2b3c4d5e"  # the ACS immutable resource id the host expects
TWILIO_ACCOUNT_SID = "AC" + "b" * 32
TWILIO_AUTH_TOKEN = "be9c" + "0" * 28  # the shape of an Auth Token (32 hex digits), not a real one
MODEL_KEY = "bench-model-key"
FRAME_S = 0.020
DELTA_FRAMES = 5  # phase 2: 100 ms per delta
DELTA_S = DELTA_FRAMES * FRAME_S
HEAD_START_DELTAS = 3  # phase 2: 300 ms sent at once, as the real model runs ahead of real time
PROBE_PERIOD_S = 0.100  # phase 3: >= 100 ms between probes of one call
IDLE_MARGIN_S = 0.025  # a probe waits until the previous probe frame has played out (+ margin)
GAP_SKIP_FRAMES = 5  # phase 2: the first frames of a call go out in a burst (the lead), not paced
WARMUP_S = 1.0
DRAIN_TIMEOUT_S = 3.0
BARGE_PERIOD_S = 1.0  # phase 4: a barge-in per call every >= 1 s
BARGE_DELTAS, BARGE_DELTA_FRAMES = 5, 10  # phase 4: 1 s of audio per response, 5 deltas sent at once
BARGE_AFTER_S = (0.200, 0.400)  # phase 4: speech_started this long after the first delta (varied)
BARGE_CANCEL_TIMEOUT_S = 1.0  # phase 4: how long the model waits for the host's response.cancel
BARGE_PAUSE_S = 0.300  # phase 4: after response.done: stragglers arrive, and the caller is idle again
BARGE_LATE_S = 0.020  # issue 12: no assistant audio reaches the caller later than this after speech_started
BARGE_SEQ_STRIDE = 1 << 16  # phase 4: barge-in k's frames are numbered k * stride + i
PHASES = ("inbound", "speaking", "probes", "bargein")

T = TypeVar("T")

TAG = struct.Struct("<2sHI4x")  # magic, call index, sequence number: 12 bytes = 16 base64 chars
IN_MAGIC = b"IN"  # caller -> model
SPEAK_MAGIC = b"O2"  # model -> caller, phase 2
PROBE_MAGIC = b"O3"  # model -> caller, phase 3
BARGE_MAGIC = b"O4"  # model -> caller, phase 4: audio a barge-in cuts, so never counted as lost
FILL_MAGIC = b"FI"  # caller -> model after the last measured frame: pushes out what the host holds
# what the host can hold of a caller's stream, in frames: the longest append MEDIA_MODEL_APPEND_MS allows
# less one, and what soxr keeps back when it resamples (up to 3 frames at VHQ, 16 -> 24 kHz)
RESAMPLER_HOLD_FRAMES = 3
FILL_FRAMES = int(AUDIO_CHUNKS[-1]) // 20 + RESAMPLER_HOLD_FRAMES


@dataclass(frozen=True)
class Audio:
    """A provider's 20 ms frame, as the bench tags it."""

    label: str
    rate: int
    frame_bytes: int
    silence: int  # the byte value of silence in this encoding

    @property
    def frame_b64_chars(self) -> int:
        return 4 * math.ceil(self.frame_bytes / 3)

    def frame(self, magic: bytes, call: int, seq: int) -> bytes:
        return TAG.pack(magic, call, seq) + bytes([self.silence]) * (self.frame_bytes - TAG.size)


PCM24 = Audio("24 kHz", 24_000, 960, 0)  # ACS `pcm24KMono`, the production default; the model's own
PCM16 = Audio("16 kHz, resampled to the model's 24 kHz", 16_000, 640, 0)  # ACS `pcm16KMono`
ULAW8 = Audio("Twilio μ-law 8 kHz", 8000, 160, 0xFF)  # Twilio's only format; the model takes it as is


def now() -> float:
    return time.monotonic()


async def sleep_until(deadline: float) -> None:
    delay = deadline - now()
    if delay > 0:
        await asyncio.sleep(delay)


# -- how a frame is known on the far side ---------------------------------------------------------
Frame = tuple[float, bytes, int]  # a frame the caller received: (arrival, magic, sequence number)


class Framing(ABC):
    """How the far side knows each 20 ms frame: by its tag where the host passes audio through byte for
    byte, by its position in its call's stream where the host resamples it (no tag survives that)."""

    tagged: ClassVar[bool]

    @abstractmethod
    def caller_takes(self, leg: CallerLeg, at: float, raw: bytes) -> int:
        """Assistant audio one message brought the caller: its frames into `leg.out_frames` (those of
        phase 4 apart), each arriving when it starts to play. Returns the number of frames."""

    @abstractmethod
    def model_takes(self, model: BenchModel, conn: ModelConn, at: float, raw: bytes) -> None:
        """The caller's audio one `input_audio_buffer.append` brought: its frames into `conn.in_recv`."""

    @abstractmethod
    def configure(self, caller: Audio, model: Audio, settings: MediaSettings) -> None:
        """The host's settings, as it reads them, once known."""

    @abstractmethod
    def socket_opened(self, model: BenchModel, conn: ModelConn) -> None:
        """A model socket opened: by position, it is the call whose turn it is (`dial`)."""

    async def dial(self, legs: Sequence[CallerLeg], model: BenchModel, url: str) -> None:
        """Every call, all at once: each model socket is known by the tag of its first append."""
        await gather_bounded([leg.dial(url) for leg in legs], timeout=30.0)

    @abstractmethod
    def check_sockets(self) -> None:
        """After the run: raise if a model socket cannot be matched to its caller."""

    def received(self, leg: CallerLeg, conn: ModelConn) -> list[Frame]:
        """The frames the caller received, each with the magic and number the model sent it with."""
        return leg.out_frames

    @abstractmethod
    def inbound_settled(self, legs: Sequence[CallerLeg], model: BenchModel) -> bool:
        """Everything the callers sent (what the host may hold at the end apart) has reached the model."""

    @abstractmethod
    def counts(self, legs: Sequence[CallerLeg], model: BenchModel, out_of_order: int) -> dict[str, Any]:
        """Frames sent, received, lost and duplicated both ways (the JSON's `frames`)."""


class Tagged(Framing):
    """Pass-through audio: every frame carries its tag (magic, call, sequence number) to the far side."""

    tagged = True

    def configure(self, caller: Audio, model: Audio, settings: MediaSettings) -> None:
        pass  # the audio passes through: nothing of the host's to reckon with

    def socket_opened(self, model: BenchModel, conn: ModelConn) -> None:
        pass  # its call is the one its first append is tagged with (`model_takes`)

    def check_sockets(self) -> None:
        pass  # a socket's frames carry their call: a foreign one is counted (`foreign_appends`)

    def caller_takes(self, leg: CallerLeg, at: float, raw: bytes) -> int:
        size = leg.audio.frame_bytes
        frames = 0
        barged: Counter[int] | None = None  # phase 4: frames by barge-in number
        for offset in range(0, len(raw) - size + 1, size):
            tag = TAG.unpack_from(raw, offset)
            magic = bytes(tag[0])
            if magic not in (SPEAK_MAGIC, PROBE_MAGIC, BARGE_MAGIC) or tag[1] != leg.index:
                leg.bad_frames["untagged"] += 1
                continue
            if magic == BARGE_MAGIC:
                leg.barge_frames += 1
                barged = barged if barged is not None else Counter()
                barged[int(tag[2]) // BARGE_SEQ_STRIDE] += 1
            else:
                leg.out_frames.append((at + frames * FRAME_S, magic, int(tag[2])))
            frames += 1
        if barged is not None:
            leg.barge_messages.extend((at, number, count) for number, count in barged.items())
        return frames

    def model_takes(self, model: BenchModel, conn: ModelConn, at: float, raw: bytes) -> None:
        size = model.audio.frame_bytes
        for offset in range(0, len(raw) - size + 1, size):
            magic, call, seq = TAG.unpack_from(raw, offset)
            if magic == FILL_MAGIC:
                continue
            if magic != IN_MAGIC:
                conn.untagged_appends += 1
                continue
            if conn.call is None and call not in model.by_call:
                conn.call = call
                model.by_call[call] = conn
            if call != conn.call:
                conn.foreign_appends += 1
                continue
            conn.in_recv.append((at, seq))

    def inbound_settled(self, legs: Sequence[CallerLeg], model: BenchModel) -> bool:
        return sum(len(c.in_recv) for c in model.conns) >= sum(len(leg.in_sent_at) for leg in legs)

    def counts(self, legs: Sequence[CallerLeg], model: BenchModel, out_of_order: int) -> dict[str, Any]:
        in_sent = sum(len(leg.in_sent_at) for leg in legs)
        in_recv_unique = sum(len({seq for _, seq in c.in_recv}) for c in model.conns)
        in_recv = sum(len(c.in_recv) for c in model.conns)
        out_sent = sum(len(c.out_sent) for c in model.conns)
        out_recv_unique = sum(len({(m, seq) for _, m, seq in leg.out_frames}) for leg in legs)
        out_recv = sum(len(leg.out_frames) for leg in legs)
        return {
            "inbound_sent": in_sent,
            "inbound_received": in_recv,
            "inbound_lost": in_sent - in_recv_unique,
            "inbound_duplicated": in_recv - in_recv_unique,
            "outbound_sent": out_sent,
            "outbound_received": out_recv,
            "outbound_lost": out_sent - out_recv_unique,
            "outbound_duplicated": out_recv - out_recv_unique,
            "outbound_out_of_order": out_of_order,
            "untagged_appends": sum(c.untagged_appends for c in model.conns),
            "foreign_appends": sum(c.foreign_appends for c in model.conns),
        }


@dataclass
class InboundHold:
    """What the host has passed on to the model of a caller's first n frames, when it resamples them:
    soxr keeps part of its output back (16 -> 24 kHz at HQ it comes in bursts of 734 samples every
    other frame, so up to about 1.8 frames), and the host's batching a part-filled append
    (MEDIA_MODEL_APPEND_MS). Replayed with the host's own `ToModel` and settings on frames of the same
    length: soxr's output count depends on the lengths only, so the count is exact."""

    caller: Audio
    model: Audio
    quality: str  # MEDIA_WS_SOXR_QUALITY
    append_ms: int  # MEDIA_MODEL_APPEND_MS
    # whole frames at the model after 0, 1, 2... of the caller's
    _delivered: list[int] = field(default_factory=lambda: [0], init=False, repr=False)
    _bytes: int = field(default=0, init=False, repr=False)
    _to_model: ToModel | None = field(default=None, init=False, repr=False)

    def delivered(self, frames: int) -> int:
        if self._to_model is None:  # the callers' PCM16 to the model's own PCM16 at 24 kHz
            leg = LegAudio("pcm16", self.caller.rate)
            self._to_model = ToModel("pcm24", leg, self.quality, append_ms=self.append_ms)
        silence = bytes(self.caller.frame_bytes)
        while len(self._delivered) <= frames:
            for event in self._to_model.events(silence):
                self._bytes += len(binascii.a2b_base64(json.loads(event)["audio"]))
            self._delivered.append(self._bytes // self.model.frame_bytes)
        return self._delivered[frames]


@dataclass
class ByPosition(Framing):
    """Resampled audio: the k-th 20 ms a side receives of a call is the k-th its peer sent. Bytes are
    counted and re-cut into frames on the receiving side; the model sockets are the calls' in the order
    they were dialled (one at a time). The caller's fill frames push out what the host holds of the
    measured ones inbound; outbound, the host flushes its resampler at the end of each item."""

    hold: InboundHold | None = None  # once the host's settings are known (`configure`)
    turn: int | None = None  # the call whose model socket is due to open: it is dialling
    out_of_turn: int = 0  # model sockets that opened when no call, or another one, was due

    tagged = False

    def configure(self, caller: Audio, model: Audio, settings: MediaSettings) -> None:
        self.hold = InboundHold(caller, model, settings.soxr_quality, settings.model_append_ms)

    def caller_takes(self, leg: CallerLeg, at: float, raw: bytes) -> int:
        size = leg.audio.frame_bytes
        first = leg.out_bytes // size
        leg.out_bytes += len(raw)
        frames = leg.out_bytes // size - first
        leg.out_frames.extend((at + k * FRAME_S, b"", first + k) for k in range(frames))
        return frames

    def model_takes(self, model: BenchModel, conn: ModelConn, at: float, raw: bytes) -> None:
        size = model.audio.frame_bytes
        first = conn.in_bytes // size
        conn.in_bytes += len(raw)
        conn.in_recv.extend((at, seq) for seq in range(first, conn.in_bytes // size))

    def socket_opened(self, model: BenchModel, conn: ModelConn) -> None:
        if self.turn is None or self.turn in model.by_call:
            self.out_of_turn += 1
            return
        conn.call = self.turn
        model.by_call[self.turn] = conn

    async def dial(self, legs: Sequence[CallerLeg], model: BenchModel, url: str) -> None:
        """Frames known by position carry no call index: one call at a time, each dialled only once the
        last one's model socket is open (the host opens it when the caller's media socket connects), so
        the i-th model socket is call i's. A socket at any other moment fails the run."""
        for leg in legs:
            self.turn = leg.index
            await gather_bounded([leg.dial(url)], timeout=30.0)

            def due(count: int = leg.index + 1) -> bool:
                return len(model.conns) >= count

            opened = await wait_until(due, timeout=15.0, step=0.002)
            if not opened or self.out_of_turn or model.by_call.get(leg.index) is not model.conns[-1]:
                raise RuntimeError(
                    f"call {leg.index}: {len(model.conns)} model sockets opened where "
                    f"{leg.index + 1} were due ({self.out_of_turn} out of turn): "
                    "model sockets cannot be matched to callers"
                )
        self.turn = None  # from now on, any new socket is out of turn

    def check_sockets(self) -> None:
        """A model socket that opened after the calls were dialled (a reconnect) would be nobody's:
        fail rather than count its frames against the wrong call."""
        if self.out_of_turn:
            raise RuntimeError(
                f"{self.out_of_turn} model sockets opened out of turn: frames known by position "
                "cannot be matched to callers"
            )

    def received(self, leg: CallerLeg, conn: ModelConn) -> list[Frame]:
        magics = conn.out_magic
        return [(at, magics[seq] if seq < len(magics) else b"", seq) for at, _, seq in leg.out_frames]

    def _inbound_expected(self, leg: CallerLeg) -> int:
        assert self.hold is not None
        return self.hold.delivered(len(leg.in_sent_at) + leg.fill_sent)

    def inbound_settled(self, legs: Sequence[CallerLeg], model: BenchModel) -> bool:
        return all(
            (conn := model.by_call.get(leg.index)) is not None
            and len(conn.in_recv) >= self._inbound_expected(leg)
            for leg in legs
        )

    def counts(self, legs: Sequence[CallerLeg], model: BenchModel, out_of_order: int) -> dict[str, Any]:
        figures = Counter[str]()
        for leg in legs:
            conn = model.by_call.get(leg.index)
            sent, fill = len(leg.in_sent_at), leg.fill_sent
            received = 0 if conn is None else len(conn.in_recv)  # the fill frames' part included
            expected = self._inbound_expected(leg)
            figures["inbound_sent"] += sent
            figures["inbound_fill_sent"] += fill
            figures["inbound_received"] += min(received, sent)
            figures["inbound_received_with_fill"] += received
            figures["inbound_held_at_end"] += sent + fill - expected
            figures["inbound_lost"] += max(0, expected - received)
            figures["inbound_duplicated"] += max(0, received - expected)
            out_sent = 0 if conn is None else len(conn.out_sent)
            out_received = len(leg.out_frames)
            figures["outbound_sent"] += out_sent
            figures["outbound_received"] += out_received
            figures["outbound_lost"] += max(0, out_sent - out_received)
            figures["outbound_duplicated"] += max(0, out_received - out_sent)
        keys = (
            "inbound_sent",
            "inbound_received",
            "inbound_lost",
            "inbound_duplicated",
            "outbound_sent",
            "outbound_received",
            "outbound_lost",
            "outbound_duplicated",
            "inbound_fill_sent",
            "inbound_received_with_fill",
            "inbound_held_at_end",
        )
        assert self.hold is not None
        return {
            **{key: figures[key] for key in keys},
            "inbound_hold": {"soxr_quality": self.hold.quality, "append_ms": self.hold.append_ms},
            # these need tags: not applicable rather than 0
            "outbound_out_of_order": None,
            "untagged_appends": None,
            "foreign_appends": None,
        }


TAGGED = Tagged()


# -- the callers ----------------------------------------------------------------------------------
@dataclass
class CallerLeg(ABC):
    """One caller of either provider; keeps only what the bench needs of each frame (arrival, tag)."""

    audio: Audio = PCM24
    framing: Framing = TAGGED
    index: int = 0
    in_sent_at: list[float] = field(default_factory=list)  # by sequence number
    fill_sent: int = 0  # FILL_MAGIC frames sent after the last measured one
    out_bytes: int = 0  # assistant audio received, in bytes (frames by position)
    send_lag: list[tuple[float, float]] = field(default_factory=list)  # (due, how late it was sent)
    out_frames: list[tuple[float, bytes, int]] = field(default_factory=list)  # (arrival, magic, seq)
    bad_frames: Counter[str] = field(default_factory=Counter)
    other_kinds: Counter[str] = field(default_factory=Counter)
    # phase 4, apart from `out_frames`: (arrival, barge-in number, frames) per message of its audio
    barge_messages: list[tuple[float, int, int]] = field(default_factory=list)
    barge_frames: int = 0
    stops: list[float] = field(default_factory=list)  # arrivals of StopAudio (ACS) / `clear` (Twilio)

    def take_audio(self, at: float, b64: str) -> int:
        """One message of assistant audio: one 20 ms frame or a chunk of them (MEDIA_PLAYBACK_CHUNK_MS).
        Each frame counts as arriving when it starts to play, so frame gaps stay comparable whatever the
        chunk size; phase 4's frames count as arriving with their message. Returns the number of frames
        it held."""
        try:
            raw = binascii.a2b_base64(b64)
        except binascii.Error:
            self.bad_frames["not_base64"] += 1
            return 0
        if not raw or len(raw) % self.audio.frame_bytes:
            self.bad_frames["wrong_size"] += 1
        return self.framing.caller_takes(self, at, raw)

    @abstractmethod
    async def dial(self, url: str) -> None: ...

    @abstractmethod
    async def send_tagged(self, seq: int, magic: bytes = IN_MAGIC) -> float:
        """One tagged 20 ms frame as the provider sends it; returns the time it was sent."""

    @abstractmethod
    async def close(self) -> None: ...


@dataclass
class AcsCaller(MediaLeg, CallerLeg):
    token: str = ""  # ACS's JWT for the upgrade

    async def dial(self, url: str) -> None:
        await self.connect(url, self.token)

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            at = now()
            message = json.loads(msg.data)
            kind = message.get("Kind")
            if kind == "AudioData":
                self.take_audio(at, message["AudioData"]["Data"])
            elif kind == "StopAudio":
                self.stops.append(at)
            else:
                self.other_kinds[str(kind)] += 1

    async def send_tagged(self, seq: int, magic: bytes = IN_MAGIC) -> float:
        """Shaped like `MediaLeg.send_audio`."""
        text = json.dumps(
            {
                "kind": "AudioData",
                "audioData": {
                    "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                    "participantRawID": "4:+14255550123",
                    "data": base64.b64encode(self.audio.frame(magic, self.index, seq)).decode("ascii"),
                    "silent": False,
                },
            }
        )
        sent = now()
        await self.send_raw(text)
        self.sent_frames += 1
        return sent


@dataclass
class TwilioCaller(CallerLeg):
    """Twilio's side of a `<Connect><Stream>`, only as much of it as the host sees: a signed upgrade,
    `connected` and `start` (with our webhook's per-call token), `media`, mark echoes and `stop`.
    `emulators.twilio.MediaStream` streams on its own clock and records every message; the bench needs
    its frames on the shared schedule and must stay cheap, so it speaks the wire itself."""

    audio: Audio = ULAW8
    auth_token: str = ""
    account_sid: str = ""
    call_sid: str = field(default_factory=lambda: new_sid("CA"))
    stream_sid: str = field(default_factory=lambda: new_sid("MZ"))
    media_received: int = 0  # `media` messages: one 20 ms frame or a chunk (MEDIA_PLAYBACK_CHUNK_MS)
    marks_received: int = 0
    marks_echoed: int = 0
    marks_due: deque[tuple[float, str]] = field(default_factory=deque)  # (when its audio has played, name)
    _sequence: int = 0  # Twilio numbers every message after `connected`
    _playing_until: float = 0.0
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _reader: asyncio.Task[None] | None = None

    async def dial(self, url: str) -> None:
        token = mint_call_token(self.auth_token, self.call_sid, now=time.time(), ttl_seconds=3600)
        headers = {"X-Twilio-Signature": twilio_signature(self.auth_token, url, {})}
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(url, headers=headers, max_msg_size=0)
        self._reader = asyncio.create_task(self._read())
        await self._ws.send_str(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": {"callToken": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": self.audio.rate, "channels": 1},
        }
        await self._send_event("start", start=start)

    async def _send_event(self, event: str, **body: Any) -> float:
        """Returns the time it was sent."""
        assert self._ws is not None
        self._sequence += 1
        message = {"event": event, "sequenceNumber": str(self._sequence), "streamSid": self.stream_sid}
        text = json.dumps(message | body)
        sent = now()
        await self._ws.send_str(text)
        return sent

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            at = now()
            message = json.loads(msg.data)
            event = message.get("event")
            if message.get("streamSid") != self.stream_sid:
                self.bad_frames["wrong_stream_sid"] += 1
            elif event == "media":  # played back to back
                self.media_received += 1
                frames = self.take_audio(at, message["media"]["payload"])
                self._playing_until = max(at, self._playing_until) + FRAME_S * frames
            elif event == "mark":
                self.marks_received += 1
                self.marks_due.append((max(at, self._playing_until), message["mark"]["name"]))
            elif event == "clear":  # Twilio drops what it holds and echoes the marks still waiting at once
                self.stops.append(at)
                self._playing_until = at
                self.marks_due = deque((at, name) for _, name in self.marks_due)
            else:
                self.other_kinds[str(event)] += 1

    async def send_tagged(self, seq: int, magic: bytes = IN_MAGIC) -> float:
        # Twilio echoes a mark once the audio before it has played. The echoes due go out here, just
        # before the caller's next frame: at most 20 ms late, and no timer of their own, so the host
        # holds and receives the marks it would in production at no extra cost to the bench.
        at = now()
        while self.marks_due and self.marks_due[0][0] <= at:
            await self._send_event("mark", mark={"name": self.marks_due.popleft()[1]})
            self.marks_echoed += 1
        payload = base64.b64encode(self.audio.frame(magic, self.index, seq)).decode("ascii")
        media = {"track": "inbound", "chunk": str(seq + 1), "timestamp": str(seq * 20), "payload": payload}
        return await self._send_event("media", media=media)

    async def close(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(ConnectionError):
                await self._send_event(
                    "stop", stop={"accountSid": self.account_sid, "callSid": self.call_sid}
                )
            await self._ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


async def stream_caller(leg: CallerLeg, start: float, stop: asyncio.Event, max_frames: int) -> None:
    """Real-time 20 ms frames on an absolute schedule, like ACS and Twilio, until `stop` (or `max_frames`).
    Then FILL_FRAMES more with FILL_MAGIC in the next slots, as a live caller's stream goes on: they push
    out the measured frames the host holds for its next append (MEDIA_MODEL_APPEND_MS) on time. Begun
    only after every caller had stopped, they came up to 20 ms late, and the last measured frames of
    the last phase read up to 20 ms more latency."""
    seq = 0
    for seq in range(max_frames):
        due = start + seq * FRAME_S
        await sleep_until(due)
        if stop.is_set():
            break
        leg.send_lag.append((due, now() - due))
        try:
            leg.in_sent_at.append(await leg.send_tagged(seq))
        except ConnectionError:
            return
    for fill in range(FILL_FRAMES):
        await sleep_until(start + (seq + fill) * FRAME_S)
        with contextlib.suppress(ConnectionError):
            await leg.send_tagged(fill, FILL_MAGIC)
            leg.fill_sent += 1


# -- the model side -------------------------------------------------------------------------------
@dataclass
class BargeIn:
    """One barge-in of phase 4, as the model made it."""

    number: int  # its frames are numbered number * BARGE_SEQ_STRIDE + i
    response_id: str
    item_id: str
    speech_started: float  # when the model sent `input_audio_buffer.speech_started`


def audio_delta(response_id: str, item_id: str, audio: bytes) -> dict[str, Any]:
    return {
        "type": "response.output_audio.delta",
        "response_id": response_id,
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "delta": base64.b64encode(audio).decode("ascii"),
    }


@dataclass
class ModelConn:
    """One realtime socket the media host opened; `call` is learnt from the first tagged append, or by
    position from the call whose turn it was when it opened."""

    ws: web.WebSocketResponse
    audio: Audio
    call: int | None = None
    in_recv: list[tuple[float, int]] = field(default_factory=list)  # (arrival, seq)
    in_bytes: int = 0  # the caller's audio received, in bytes (frames by position)
    untagged_appends: int = 0
    foreign_appends: int = 0  # tagged with another call's index: crossed wires in the host
    other_events: Counter[str] = field(default_factory=Counter)
    out_sent: dict[int, float] = field(default_factory=dict)  # seq -> time its delta was sent
    out_seq: int = 0
    out_magic: list[bytes] = field(default_factory=list)  # by seq: what each frame sent was for
    # phase 4 (its frames are not in out_sent: those a barge-in cuts never arrive, by design)
    barge_ins: list[BargeIn] = field(default_factory=list)
    barge_frames_sent: int = 0
    cancels: dict[str, float] = field(default_factory=dict)  # response id -> its first response.cancel
    truncates: dict[str, int] = field(default_factory=dict)  # item id -> audio_end_ms of its truncate
    _cancel_waiters: dict[str, asyncio.Future[None]] = field(default_factory=dict)

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
        self.out_magic.extend([magic] * frames)
        audio = b"".join(self.audio.frame(magic, self.call, seq) for seq in seqs)
        text = json.dumps(audio_delta(response_id, item_id, audio))
        if self.ws.closed:
            return
        sent = now()
        for seq in seqs:
            self.out_sent[seq] = sent
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(text)

    async def barge_audio(self, response_id: str, item_id: str, first_seq: int, frames: int) -> None:
        """Phase 4's audio: its own magic and numbers, so it stays out of the lost/order accounting."""
        assert self.call is not None
        audio = b"".join(
            self.audio.frame(BARGE_MAGIC, self.call, seq) for seq in range(first_seq, first_seq + frames)
        )
        self.barge_frames_sent += frames
        await self.send(audio_delta(response_id, item_id, audio))

    async def speech_started(self, number: int, response_id: str, item_id: str) -> None:
        """Server VAD heard the caller over `response_id`: recorded with the time it was sent."""
        text = json.dumps(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": len(self.in_recv) * 20,
                "item_id": f"item_caller_{self.call}_{number}",
            }
        )
        if self.ws.closed:
            return
        self.barge_ins.append(BargeIn(number, response_id, item_id, now()))
        with contextlib.suppress(ConnectionError):
            await self.ws.send_str(text)

    def on_cancel(self, at: float, response_id: str) -> None:
        self.cancels.setdefault(response_id, at)
        if (waiter := self._cancel_waiters.pop(response_id, None)) is not None and not waiter.done():
            waiter.set_result(None)

    async def cancelled(self, response_id: str, timeout: float) -> bool:
        """Until the host cancels this response (True), or `timeout` passes (False)."""
        if response_id in self.cancels:
            return True
        waiter = self._cancel_waiters[response_id] = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        finally:
            self._cancel_waiters.pop(response_id, None)
        return True

    async def done(self, response_id: str, item_id: str) -> None:
        await self.send(
            {"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id}
        )
        await self.send(
            {"type": "response.done", "response": {"id": response_id, "status": "completed", "output": []}}
        )


class BenchModel:
    """A minimal GA realtime endpoint (api-key auth) that records tagged appends and speaks on cue, in
    the call's own audio (the host asks for it in `session.update`: nothing is converted), or, for ACS
    at 16 kHz, in PCM16 at 24 kHz as the real model does (the host resamples both ways)."""

    def __init__(self, api_key: str, audio: Audio, framing: Framing = TAGGED) -> None:
        self.api_key = api_key
        self.audio = audio
        self.framing = framing
        self.conns: list[ModelConn] = []
        self.by_call: dict[int, ModelConn] = {}
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def serve(self, tls: ssl.SSLContext | None = None) -> str:
        """Plain `ws://`, or `wss://` with `tls`; returns the base URL (http:// or https://)."""
        app = web.Application()
        app.router.add_get("/openai/v1/realtime", self._handle)
        if tls is None:
            self._runner, self.url = await serve(app)
        else:
            sock = listen()
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            await web.SockSite(self._runner, sock, ssl_context=tls).start()
            self.url = base_url(sock).replace("http://", "https://", 1)
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
        conn = ModelConn(ws, self.audio)
        self.conns.append(conn)
        self.framing.socket_opened(self, conn)
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
                if kind == "response.cancel":
                    conn.on_cancel(at, str(event.get("response_id", "")))
                elif kind == "conversation.item.truncate":
                    conn.truncates.setdefault(
                        str(event.get("item_id", "")), int(event.get("audio_end_ms", -1))
                    )
        return ws

    def _on_append(self, conn: ModelConn, at: float, audio: str) -> None:
        """One append: one 20 ms frame or several (MEDIA_MODEL_APPEND_MS), each read on its own."""
        try:
            raw = binascii.a2b_base64(audio)
        except binascii.Error:
            conn.untagged_appends += 1
            return
        self.framing.model_takes(self, conn, at, raw)


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


async def probe_latency(conn: ModelConn, leg: CallerLeg, start: float, end: float) -> int:
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


async def barge_in_repeatedly(conn: ModelConn, start: float, end: float) -> None:
    """Phase 4: a response of 1 s of audio, then the caller's speech 200-400 ms into it; the host's
    response.cancel is awaited and the response closed as cancelled, then a pause, at most one every
    BARGE_PERIOD_S. A barge-in starts only if its speech_started falls within the phase."""
    assert conn.call is not None
    rng = random.Random(conn.call)  # the same delays run after run
    due = start
    for number in itertools.count():
        delay = rng.uniform(*BARGE_AFTER_S)
        if due + delay >= end:
            return
        await sleep_until(due)
        response_id, item_id = f"resp_barge_{conn.call}_{number}", f"item_barge_{conn.call}_{number}"
        await conn.response_created(response_id)
        speaking = now()
        for k in range(BARGE_DELTAS):  # as fast as the model generates: well ahead of real time
            seq = number * BARGE_SEQ_STRIDE + k * BARGE_DELTA_FRAMES
            await conn.barge_audio(response_id, item_id, seq, BARGE_DELTA_FRAMES)
        await sleep_until(speaking + delay)  # the host is playing it meanwhile
        await conn.speech_started(number, response_id, item_id)
        await conn.cancelled(response_id, BARGE_CANCEL_TIMEOUT_S)
        await conn.send(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "status": "cancelled",
                    "status_details": {"type": "cancelled", "reason": "client_cancelled"},
                    "output": [],
                },
            }
        )
        await asyncio.sleep(BARGE_PAUSE_S)
        due = max(due + BARGE_PERIOD_S, now())


def heard_by(messages: Sequence[tuple[float, int]], at: float) -> float:
    """Seconds of audio a caller had played by `at`, of messages (arrival, frames) played back to back
    from arrival."""
    played, free = 0.0, -math.inf  # free: when the caller has played everything before
    for arrival, frames in messages:
        begin = max(free, arrival)
        free = begin + frames * FRAME_S
        played += min(max(0.0, at - begin), frames * FRAME_S)
    return played


# -- the media host process -----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


HOST_SETTING_PREFIXES = ("ACS_", "AZURE_", "AOAI_", "MEDIA_", "MODEL_", "OPENAI_", "TWILIO_")
HOST_SETTINGS = ("PORT", "HOST", "LOG_LEVEL", "MAX_CONCURRENT_CALLS", "MAX_CALL_SECONDS", "TRANSFER_TARGET")


def acs_settings(issuer: AcsTokenIssuer, acs: CallAutomationStandIn) -> dict[str, str]:
    """The host's ACS settings, pointing at the stand-ins."""
    return {
        "ACS_RESOURCE_ID": AUDIENCE,
        "ACS_JWT_ISSUER": issuer.issuer,
        "ACS_OPENID_CONFIG_URL": issuer.openid_config_url,
        "AZURE_COMMUNICATION_CONNECTION_STRING": acs.connection_string,
    }


def host_env(port: int, model_url: str, calls: int, telephony: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus any media host setting, plus the bench's settings and the
    provider's (`telephony`)."""
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
            "AZURE_OPENAI_ENDPOINT": model_url,
            "AZURE_OPENAI_API_KEY": MODEL_KEY,
            "MODEL_CONNECT_BACKOFF_SECONDS": "0.05",
            "MAX_CONCURRENT_CALLS": str(calls + 10),
            "MEDIA_DRAIN_SECONDS": "5",
            "MEDIA_WORKERS": "1",  # one process: the figures are per core
            "PYTHONUNBUFFERED": "1",
            **telephony,
        }
    )
    return env


class HostFailed(RuntimeError):
    """The media host process did not start."""


class HostProcess:
    def __init__(self, env: dict[str, str], port: int, module: str = "media_host") -> None:
        self.env = env
        self.port = port
        self.module = module  # run as `python -m <module>`
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
            self.module,
            cwd=REPO,
            env=self.env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )
        self.ps = psutil.Process(self.proc.pid)
        deadline = now() + timeout
        last = "no answer yet"
        ready: set[int] = set()  # the workers that have answered: each probe is a new connection, and
        # the kernel hashes connections over the workers' sockets, so every worker is heard from in turn;
        # a call made before a worker listens would go to the others
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=2.0)
        ) as http:
            while now() < deadline:
                if self.proc.returncode is not None:
                    raise HostFailed(f"media host exited with code {self.proc.returncode} during start-up")
                try:
                    async with http.get(self.base + "/readyz") as resp:
                        if resp.status == 200:
                            body = await resp.json()
                            ready.add(int(body["worker"]))
                            if len(ready) >= int(body["workers"]):
                                return
                            last = f"{len(ready)} of {body['workers']} workers ready"
                        else:
                            last = f"/readyz answered {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = f"{type(exc).__name__}: {exc}"
                await asyncio.sleep(0.05)
        raise HostFailed(f"media host not ready within {timeout:.0f} s ({last})")

    def _tree(self) -> list[Any]:
        """The host's process and any workers it runs: all of them serve calls."""
        return [self.ps, *self.ps.children(recursive=True)]

    def cpu_by_process(self) -> dict[int, float]:
        """CPU seconds of each process of the host (the manager and its workers, or the lone process)."""
        seconds = {}
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                seconds[process.pid] = float(times.user) + float(times.system)
        return seconds

    def calls_by_process(self) -> dict[int, int]:
        """Media sockets each process holds (connections accepted on the host's port): with several
        workers, how the kernel spread the calls."""
        calls = {}
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                calls[process.pid] = sum(
                    1
                    for c in process.net_connections(kind="tcp")
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.port
                )
        return calls

    def rss_mb(self) -> float:
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += process.memory_info().rss
        return total / 2**20

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
    host_cpu_by_process: dict[int, float]
    bench_cpu: float
    steal: float  # CPU time the hypervisor gave to others, all CPUs (Linux; 0 elsewhere)
    busy: float  # CPU time of every process on the machine, all CPUs
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
        return sum(self.host_cpu_by_process.values())

    @property
    def host_cpu_by_process(self) -> dict[int, float]:
        start = self.start.host_cpu_by_process
        return {pid: cpu - start.get(pid, 0.0) for pid, cpu in self.end.host_cpu_by_process.items()}

    @property
    def bench_cpu(self) -> float:
        return self.end.bench_cpu - self.start.bench_cpu

    @property
    def steal_pct(self) -> float:
        return 100 * (self.end.steal - self.start.steal) / (self.wall * (os.cpu_count() or 1))

    @property
    def others_pct(self) -> float:
        """What other processes on the machine used, in % of one core: the noise on a shared machine."""
        others = self.end.busy - self.start.busy - self.host_cpu - self.bench_cpu
        return max(0.0, 100 * others / self.wall)  # psutil's 10 ms ticks can make it a hair below 0

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


# -- the providers --------------------------------------------------------------------------------
class Provider(ABC):
    """A telephony provider's side of the bench: its stand-ins, the host's settings for it, its callers."""

    name: ClassVar[str]
    title: ClassVar[str]
    path: ClassVar[str]  # the host's socket for it
    audio: Audio  # the callers'
    model_audio: ClassVar[Audio]  # the fake model's: where it differs from the callers', the host resamples
    stop: ClassVar[str]  # what the host sends the caller on barge-in to drop the audio it holds

    @abstractmethod
    def __init__(self, rate: int | None = None) -> None:
        """`rate`: the callers' sample rate in Hz; None: the provider's default."""

    @abstractmethod
    async def serve(self) -> None: ...

    @abstractmethod
    def settings(self, port: int) -> dict[str, str]:
        """The host's settings for this provider, the host listening on `port`."""

    @abstractmethod
    def new_leg(self, index: int, framing: Framing) -> CallerLeg: ...

    @abstractmethod
    def control_requests(self) -> int:
        """Hang-ups and transfers the host asked of the provider: none are expected in a bench."""

    def figures(self) -> dict[str, Any]:
        """What only this provider has to report."""
        return {}

    @abstractmethod
    async def close(self) -> None: ...


class Acs(Provider):
    name, title, path, audio, model_audio, stop = "acs", "ACS", "/ws/media", PCM24, PCM24, "StopAudio"
    RATES: ClassVar[dict[int, Audio]] = {audio.rate: audio for audio in (PCM24, PCM16)}

    def __init__(self, rate: int | None = None) -> None:
        """`rate`: the callers' sample rate in Hz (`AudioMetadata`), 24 kHz unless told."""
        self.audio = self.RATES[rate or PCM24.rate]
        self.issuer = AcsTokenIssuer()
        self.acs = CallAutomationStandIn()

    async def serve(self) -> None:
        await self.issuer.serve()
        await self.acs.serve()

    def settings(self, port: int) -> dict[str, str]:
        return acs_settings(self.issuer, self.acs)

    def new_leg(self, index: int, framing: Framing) -> CallerLeg:
        token = self.issuer.sign(audience=AUDIENCE, lifetime_seconds=3600)
        return AcsCaller(
            sample_rate=self.audio.rate, audio=self.audio, framing=framing, index=index, token=token
        )

    def control_requests(self) -> int:
        return len(self.acs.requests)

    async def close(self) -> None:
        await self.acs.close()
        await self.issuer.close()


class Twilio(Provider):
    name, title, path, audio, model_audio, stop = "twilio", "Twilio", "/ws/twilio", ULAW8, ULAW8, "clear"

    def __init__(self, rate: int | None = None) -> None:
        if rate not in (None, ULAW8.rate):
            raise ValueError(f"Twilio streams μ-law at {ULAW8.rate} Hz only")
        # The bench's calls exist only as sockets: the stand-in knows none of them (404), which the
        # host takes as a call that has already ended.
        self.rest = TwilioRestStandIn(TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, lambda call_sid, form: None)
        self.callers: list[TwilioCaller] = []

    async def serve(self) -> None:
        await self.rest.serve()

    def settings(self, port: int) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": TWILIO_AUTH_TOKEN,
            "TWILIO_API_BASE_URL": self.rest.base_url,
            "MEDIA_HOST_URL": f"ws://127.0.0.1:{port}",  # + /ws/twilio: the URL the callers dial and sign
            "TWILIO_MODEL_AUDIO": "pcmu",  # the pass-through the tags rely on
        }

    def new_leg(self, index: int, framing: Framing) -> CallerLeg:
        caller = TwilioCaller(
            framing=framing, index=index, auth_token=TWILIO_AUTH_TOKEN, account_sid=TWILIO_ACCOUNT_SID
        )
        self.callers.append(caller)
        return caller

    def control_requests(self) -> int:
        return len(self.rest.requests)

    def figures(self) -> dict[str, Any]:
        return {
            "twilio_marks": {
                "media": sum(c.media_received for c in self.callers),
                "received": sum(c.marks_received for c in self.callers),
                "echoed": sum(c.marks_echoed for c in self.callers),
                "not_echoed_at_end": sum(len(c.marks_due) for c in self.callers),
            }
        }

    async def close(self) -> None:
        await self.rest.close()


PROVIDERS: dict[str, type[Provider]] = {p.name: p for p in (Acs, Twilio)}


# -- the run --------------------------------------------------------------------------------------
def every_phase(seconds: float, **own: float) -> dict[str, float]:
    """Seconds per phase: `seconds` each, unless `own` names the phase (0 skips it)."""
    return {name: own.get(name, seconds) for name in PHASES}


@dataclass(frozen=True)
class Options:
    calls: int
    seconds: Mapping[str, float]  # per phase (every_phase); 0 skips one
    tls: bool = False  # the model leg over TLS (wss://), as in Azure
    host_loop: str | None = None  # MEDIA_EVENT_LOOP for the host (None: its default)
    host_settings: Mapping[str, str] = field(default_factory=dict)  # more of the host's settings (--set)
    rate: int | None = None  # the callers' sample rate in Hz (ACS: 16000 or 24000); None: the provider's

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


class Bench:
    def __init__(self, provider: Provider, options: Options) -> None:
        self.provider = provider
        self.options = options
        self.calls = options.calls
        # pass-through audio carries tags; resampled audio is known by position
        self.framing: Framing = TAGGED if provider.audio == provider.model_audio else ByPosition()
        self.seconds = dict(options.seconds)
        self.skipped: dict[str, str] = {}  # phase -> why it did not run although asked for
        if not self.framing.tagged and self.seconds["bargein"] > 0:
            self.seconds["bargein"] = 0
            self.skipped["bargein"] = (
                "its checks need each message's barge-in, which resampled audio cannot carry"
            )
        self.model = BenchModel(MODEL_KEY, provider.model_audio, self.framing)
        self.host: HostProcess | None = None
        self.legs: list[CallerLeg] = []
        self.phases: dict[str, Phase] = {}
        self.stop_streams = asyncio.Event()
        self.stream_tasks: list[asyncio.Task[None]] = []
        self.loop_lags: list[tuple[float, float]] = []
        self.probes_delayed = 0
        self.notes: list[str] = []
        self.host_rss_idle_mb: float | None = None  # ready, before the first call
        self.host_rss_mb: float | None = None  # at the end, every call still connected
        self.host_calls_by_process: dict[int, int] = {}  # media sockets per host process, once connected
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None

    def snapshot(self) -> Snapshot:
        assert self.host is not None
        conns = self.model.conns
        cpu = psutil.cpu_times()
        return Snapshot(
            at=now(),
            host_cpu_by_process=self.host.cpu_by_process(),
            bench_cpu=time.process_time(),
            steal=float(getattr(cpu, "steal", 0.0)),
            busy=sum(float(getattr(cpu, f, 0.0)) for f in ("user", "nice", "system", "irq", "softirq")),
            in_sent=sum(len(leg.in_sent_at) for leg in self.legs),
            in_recv=sum(len(c.in_recv) for c in conns),
            out_sent=sum(len(c.out_sent) for c in conns),
            out_recv=sum(len(leg.out_frames) + leg.barge_frames for leg in self.legs),
        )

    def outbound_settled(self) -> bool:
        return sum(len(leg.out_frames) for leg in self.legs) >= sum(len(c.out_sent) for c in self.model.conns)

    def inbound_settled(self) -> bool:
        return self.framing.inbound_settled(self.legs, self.model)

    async def run(self) -> dict[str, Any]:
        await self.provider.serve()
        extra: dict[str, str] = {}
        tls: ssl.SSLContext | None = None
        if self.options.tls:
            self._tls_dir = tempfile.TemporaryDirectory(prefix="bench-tls-")
            cert = LoopbackCert.create(Path(self._tls_dir.name))
            tls = cert.server_context()
            extra["SSL_CERT_FILE"] = str(cert.cert_file)  # trusted, and verified as in production
        if self.options.host_loop is not None:
            extra[event_loop.SETTING] = self.options.host_loop
        extra.update(self.options.host_settings)
        await self.model.serve(tls)
        port = free_port()
        env = host_env(port, self.model.url, self.calls, self.provider.settings(port)) | extra
        self.framing.configure(self.provider.audio, self.provider.model_audio, MediaSettings.from_env(env))
        self.host = HostProcess(env, port)
        await self.host.start()
        self.host_rss_idle_mb = self.host.rss_mb()
        lag_task = asyncio.create_task(
            loop_lag_monitor(self.stop_streams, self.loop_lags, int((self.options.total_seconds + 60) / 0.01))
        )
        try:
            await self._connect_calls()
            await asyncio.sleep(WARMUP_S)
            self.host_calls_by_process = self.host.calls_by_process()
            # a collection of this process's long-lived records would stall its loop for tens of ms,
            # and that would show up as media host latency: no cyclic GC while measuring
            gc.collect()
            gc.freeze()
            gc.disable()
            await self._phase("inbound", self._idle)
            await self._phase("speaking", self._speaking, settle=self.outbound_settled)
            await self._phase("probes", self._probes, settle=self.outbound_settled)
            await self._phase("bargein", self._barge_ins)  # each barge-in ends with a pause for stragglers
            self.stop_streams.set()  # each caller sends its fill frames and stops
            await asyncio.gather(*self.stream_tasks, return_exceptions=True)
            # still without GC: the first collection pauses this loop for ~30 ms, which would add to
            # the latency of the last frames in flight
            if not await wait_until(self.inbound_settled, DRAIN_TIMEOUT_S):
                self.notes.append(f"inbound frames still missing after {DRAIN_TIMEOUT_S:.0f} s")
        finally:
            gc.enable()
            gc.unfreeze()
            self.stop_streams.set()
            await asyncio.gather(*self.stream_tasks, lag_task, return_exceptions=True)
        self.framing.check_sockets()
        self.host_rss_mb = self.host.rss_mb()
        return self.figures()

    async def _connect_calls(self) -> None:
        assert self.host is not None
        url = self.host.base.replace("http://", "ws://") + self.provider.path
        self.legs = [self.provider.new_leg(i, self.framing) for i in range(self.calls)]
        await self.framing.dial(self.legs, self.model, url)
        base = now() + 0.05
        max_frames = int((self.options.total_seconds + 60) / FRAME_S)
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
        seconds = self.seconds[name]
        if seconds <= 0:
            return
        start = self.snapshot()
        await body(start.at, start.at + seconds)
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

    async def _barge_ins(self, start: float, end: float) -> None:
        barging = []
        for call, conn in sorted(self.model.by_call.items()):
            offset = call * BARGE_PERIOD_S / self.calls
            barging.append(barge_in_repeatedly(conn, start + offset, end))
        await gather_bounded(barging, timeout=end - now() + BARGE_CANCEL_TIMEOUT_S + BARGE_PAUSE_S + 5.0)

    def barge_in_figures(self) -> dict[str, Any] | None:
        """Phase 4: each barge-in matched with the caller's first StopAudio / `clear` after its
        speech_started (and before the next one's), and with the messages of its response's audio."""
        if "bargein" not in self.phases:
            return None
        reactions: list[float] = []
        cancel_reactions: list[float] = []
        truncate_errors: list[float] = []
        attempted = stopped = cancelled = truncated = late_barge_ins = late_messages = after_stop = 0
        after_speech = unmatched_stops = 0
        latest_after_speech = -math.inf
        for leg in self.legs:
            conn = self.model.by_call.get(leg.index)
            if conn is None:
                continue
            messages: defaultdict[int, list[tuple[float, int]]] = defaultdict(list)
            for at, number, frames in leg.barge_messages:
                messages[number].append((at, frames))
            stops = sorted(leg.stops)
            matched = 0
            for i, barge in enumerate(conn.barge_ins):
                attempted += 1
                said = barge.speech_started
                until = conn.barge_ins[i + 1].speech_started if i + 1 < len(conn.barge_ins) else math.inf
                stop = next((s for s in stops if said <= s < until), None)
                arrivals = [at for at, _ in messages.get(barge.number, [])]
                late = sum(1 for at in arrivals if at > said + BARGE_LATE_S)
                late_messages += late
                late_barge_ins += bool(late)
                after_speech += sum(1 for at in arrivals if at > said)
                latest_after_speech = max([latest_after_speech, *(at - said for at in arrivals if at > said)])
                if stop is not None:
                    stopped += 1
                    matched += 1
                    reactions.append(stop - said)
                    after_stop += sum(1 for at in arrivals if at > stop)
                    if (end_ms := conn.truncates.get(barge.item_id)) is not None:
                        heard = heard_by(messages.get(barge.number, []), stop)
                        truncate_errors.append(end_ms / 1000 - heard)
                if (cancel := conn.cancels.get(barge.response_id)) is not None:
                    cancelled += 1
                    cancel_reactions.append(cancel - said)
                truncated += barge.item_id in conn.truncates
            unmatched_stops += len(stops) - matched
        return {
            "attempted": attempted,
            "stopped": stopped,  # a StopAudio / clear reached the caller after speech_started
            "reaction": percentiles(reactions),  # speech_started sent -> StopAudio / clear received
            "late_after_ms": round(BARGE_LATE_S * 1000, 1),
            "barge_ins_with_late_audio": late_barge_ins,
            "late_messages": late_messages,  # messages of the response's audio later than that
            "messages_after_speech_started": after_speech,  # in flight when it was sent: any lateness
            "latest_after_speech_started_ms": None
            if not after_speech
            else round(latest_after_speech * 1000, 3),
            "messages_after_stop": after_stop,  # ... and later than the StopAudio / clear itself
            "response_cancel": cancelled,
            "cancel_reaction": percentiles(cancel_reactions),  # speech_started sent -> response.cancel
            "truncated": truncated,  # a conversation.item.truncate for the response's item
            "truncate_minus_heard": percentiles(truncate_errors),  # audio_end_ms - played at the stop
            "stops_unmatched": unmatched_stops,  # StopAudio / clear with no barge-in to answer
            "frames_sent": sum(c.barge_frames_sent for c in self.model.conns),
            "frames_received": sum(leg.barge_frames for leg in self.legs),
        }

    # -- figures ----------------------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        p1, p2 = self.phases.get("inbound"), self.phases.get("speaking")
        inbound_us = p1.host_cpu / p1.in_frames * 1e6 if p1 is not None and p1.in_frames else None
        outbound_us = None
        if inbound_us is not None and p2 is not None and p2.out_frames:
            outbound_us = (p2.host_cpu - inbound_us / 1e6 * p2.in_frames) / p2.out_frames * 1e6
        # both directions streaming: what a call costs while the assistant talks
        call_second_ms = None if p2 is None else 1000 * p2.host_cpu / (p2.wall * self.calls)
        busiest = p2 or p1  # per worker: what a call costs it in the busiest phase measured
        workers = [
            {
                "pid": pid,
                "calls": calls,
                "cpu_per_call_second_ms": None
                if busiest is None
                else round(1000 * busiest.host_cpu_by_process.get(pid, 0.0) / (busiest.wall * calls), 3),
            }
            for pid, calls in sorted(self.host_calls_by_process.items())
            if calls
        ]
        rss_per_call_kb = None
        if self.host_rss_mb is not None and self.host_rss_idle_mb is not None:
            rss_per_call_kb = (self.host_rss_mb - self.host_rss_idle_mb) * 1024 / self.calls

        inbound_latency: dict[str, list[float]] = {n: [] for n in PHASES}
        # MEDIA_MODEL_APPEND_MS holds frames on purpose: a frame's latency is its wait for the rest of its
        # append (the caller's clock), then the host's work from the append's last frame (the host's own).
        # Tagged frames only: by position, an append's end is not a frame's (soxr holds part of it back).
        append_wait: list[float] = []
        processing: list[float] = []
        for conn in self.model.conns:
            if conn.call is None:
                continue
            sent_at = self.legs[conn.call].in_sent_at
            appends = [list(frames) for _, frames in itertools.groupby(conn.in_recv, key=lambda f: f[0])]
            for number, append in enumerate(appends):
                sent = [(at, sent_at[seq]) for at, seq in append if seq < len(sent_at)]
                # the last append may end with fill frames, which the model does not record
                split = self.framing.tagged and number < len(appends) - 1
                for at, frame_sent in sent:
                    phase = next(
                        (p for p in self.phases.values() if p.start.at <= frame_sent < p.end.at), None
                    )
                    if phase is None:
                        continue
                    inbound_latency[phase.name].append(at - frame_sent)
                    if split:
                        append_wait.append(sent[-1][1] - frame_sent)
                        if frame_sent == sent[-1][1]:
                            processing.append(at - frame_sent)

        run = list(self.phases.values())

        def measured(at: float) -> bool:
            return run[0].start.at <= at < run[-1].end.at

        outbound_latency: list[float] = []
        gaps: list[float] = []
        out_order_errors = 0
        for leg in self.legs:
            model_conn = self.model.by_call.get(leg.index)
            if model_conn is None:
                continue
            received = self.framing.received(leg, model_conn)
            speaking = [(at, seq) for at, magic, seq in received if magic == SPEAK_MAGIC]
            out_order_errors += sum(1 for a, b in itertools.pairwise(speaking) if b[1] <= a[1])
            steady = [at for at, _ in speaking[GAP_SKIP_FRAMES:]]
            gaps.extend(b - a for a, b in itertools.pairwise(steady))
            for at, magic, seq in received:
                if magic == PROBE_MAGIC and seq in model_conn.out_sent:
                    outbound_latency.append(at - model_conn.out_sent[seq])

        bad = Counter[str]()
        for leg in self.legs:
            bad.update(leg.bad_frames)
        other_kinds = Counter[str]()
        for leg in self.legs:
            other_kinds.update(leg.other_kinds)
        if requests := self.provider.control_requests():
            self.notes.append(
                f"the media host made {requests} hang-up/transfer requests to {self.provider.title}"
            )

        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "provider": self.provider.name,
            "audio": self.provider.audio.label,
            "calls": self.calls,
            "seconds_per_phase": dict(self.seconds),
            "sample_rate": self.provider.audio.rate,  # the callers'
            "model_sample_rate": self.provider.model_audio.rate,
            "frames_known_by": "tag" if self.framing.tagged else "position",
            "phases_skipped": dict(self.skipped),
            "model_leg_tls": self.options.tls,
            "host_event_loop": self.options.host_loop,  # None: whatever `python -m media_host` runs on
            "host_settings": dict(self.options.host_settings),
            "bench_event_loop": type(asyncio.get_running_loop()).__module__.partition(".")[0],
            "phases": {
                p.name: {
                    "wall_s": round(p.wall, 3),
                    "host_cpu_s": round(p.host_cpu, 3),
                    "host_cpu_pct_of_one_core": round(100 * p.host_cpu / p.wall, 1),
                    "bench_cpu_pct_of_one_core": round(100 * p.bench_cpu / p.wall, 1),
                    "machine_steal_pct": round(p.steal_pct, 1),
                    "others_cpu_pct_of_one_core": round(p.others_pct, 1),
                    "inbound_frames": p.in_frames,
                    "outbound_frames": p.out_frames,
                }
                for p in run
            },
            "cpu_us_per_frame": {
                "inbound": None if inbound_us is None else round(inbound_us, 1),
                "outbound": None if outbound_us is None else round(outbound_us, 1),
            },
            "cpu_ms_per_call_second": None if call_second_ms is None else round(call_second_ms, 3),
            "latency": {
                "inbound_p1": percentiles(inbound_latency["inbound"]),
                "inbound_p2": percentiles(inbound_latency["speaking"]),
                "inbound_p3": percentiles(inbound_latency["probes"]),
                "inbound_p4": percentiles(inbound_latency["bargein"]),
                "inbound_append_wait": percentiles(append_wait) if self.framing.tagged else None,
                "inbound_processing": percentiles(processing) if self.framing.tagged else None,
                "outbound_p3_idle_queue": percentiles(outbound_latency),
            },
            "outbound_gap_p2": percentiles(gaps),
            "frames": {
                **self.framing.counts(self.legs, self.model, out_order_errors),
                "outbound_bad": dict(bad),
                f"{self.provider.name}_other_kinds": dict(other_kinds),
            },
            **self.provider.figures(),
            "probes_not_idle_within_1s": self.probes_delayed,
            "barge_in": self.barge_in_figures(),
            "bench_self": {
                "loop_lag": percentiles([lag for due, lag in self.loop_lags if measured(due)]),
                "send_lateness": percentiles(
                    [lag for leg in self.legs for due, lag in leg.send_lag if measured(due)]
                ),
            },
            "host": {
                "model_sockets": len(self.model.conns),
                "workers": workers,
                "rss_mb_idle": None if self.host_rss_idle_mb is None else round(self.host_rss_idle_mb, 1),
                "rss_mb_at_end": None if self.host_rss_mb is None else round(self.host_rss_mb, 1),
                "rss_kb_per_call": None if rss_per_call_kb is None else round(rss_per_call_kb, 1),
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
        await self.provider.close()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()


# -- output ---------------------------------------------------------------------------------------
def _ms(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def tagged_frame_lines(f: Mapping[str, Any]) -> list[str]:
    return [
        f"frames inbound:  sent {f['inbound_sent']}, received {f['inbound_received']}, "
        f"lost {f['inbound_lost']}, duplicated {f['inbound_duplicated']}",
        f"frames outbound: sent {f['outbound_sent']}, received {f['outbound_received']}, "
        f"lost {f['outbound_lost']}, duplicated {f['outbound_duplicated']}, "
        f"out of order {f['outbound_out_of_order']}",
    ]


def position_frame_lines(fig: Mapping[str, Any]) -> list[str]:
    """Frames known by position (resampled audio): what they can show, and what they cannot."""
    f, hold = fig["frames"], fig["frames"]["inbound_hold"]
    return [
        f"frames known by position: callers at {fig['sample_rate'] // 1000} kHz, the model at "
        f"{fig['model_sample_rate'] // 1000} kHz, resampled both ways, so no tag survives; the k-th 20 ms a "
        "side receives of a call is taken for the k-th sent (bytes counted)",
        f"frames inbound:  sent {f['inbound_sent']} (+{f['inbound_fill_sent']} fill), "
        f"received {f['inbound_received']} ({f['inbound_received_with_fill']} with fill), "
        f"lost {f['inbound_lost']}, duplicated {f['inbound_duplicated']}",
        "  against what the host should have passed on: all sent, less what its resampler (soxr "
        f"{hold['soxr_quality']}) and a part-filled append ({hold['append_ms']} ms) hold at the end, "
        f"replayed with soxr: {f['inbound_held_at_end']} frames ({f['inbound_held_at_end'] / fig['calls']:.1f} "
        "per call); no other tolerance",
        f"frames outbound: sent {f['outbound_sent']}, received {f['outbound_received']}, "
        f"lost {f['outbound_lost']}, duplicated {f['outbound_duplicated']} (no tolerance: the host flushes "
        "its resampler at the end of each item)",
        "not applicable without tags (not 0): outbound out of order, foreign appends, untagged appends",
        "latency by position includes the resampling, latency the host really adds: inbound the "
        "resampler's delay (soxr gives 16 -> 24 kHz in bursts, so a frame can wait for the next one or "
        "two), outbound only its flush when an item ends (phase 3: at once)",
    ]


def render(fig: dict[str, Any]) -> str:
    provider = PROVIDERS[fig["provider"]]
    seconds = "/".join(f"{s:g}" for s in fig["seconds_per_phase"].values())
    model_leg = "wss" if fig["model_leg_tls"] else "ws"
    host_loop = fig["host_event_loop"] or "python -m media_host"
    lines = [
        f"media host load: {fig['calls']} calls, phases {seconds} s, {fig['audio']}, model leg {model_leg}, "
        f"host loop {host_loop}, bench loop {fig['bench_event_loop']}, {fig['machine']['cpus']} cpus, "
        f"{fig['date']}",
        *([" ".join(f"{k}={v}" for k, v in fig["host_settings"].items())] if fig["host_settings"] else []),
        "",
        f"{'phase':<22}{'wall s':>7}{'host cpu s':>11}{'host %core':>11}{'bench %core':>12}"
        f"{'in frames':>11}{'out frames':>11}{'steal':>7}{'others %core':>13}",
    ]
    titles = {
        "inbound": "1 inbound only",
        "speaking": "2 inbound + speaking",
        "probes": "3 latency probes",
        "bargein": "4 barge-in",
    }
    for name, p in fig["phases"].items():
        lines.append(
            f"{titles[name]:<22}{p['wall_s']:>7.1f}{p['host_cpu_s']:>11.2f}{p['host_cpu_pct_of_one_core']:>10.1f}%"
            f"{p['bench_cpu_pct_of_one_core']:>11.1f}%{p['inbound_frames']:>11}{p['outbound_frames']:>11}"
            f"{p['machine_steal_pct']:>6.1f}%{p['others_cpu_pct_of_one_core']:>12.1f}%"
        )
    cpu = fig["cpu_us_per_frame"]
    lines += [
        "",
        f"host CPU per frame: inbound {_ms(cpu['inbound'])} us, outbound {_ms(cpu['outbound'])} us; "
        f"per call-second, both directions (2): {_ms(fig['cpu_ms_per_call_second'])} ms",
        "",
        f"{'added by the media host':<34}{'samples':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}",
    ]
    rows = [
        ("inbound latency, phase 1", fig["latency"]["inbound_p1"]),
        ("inbound latency, phase 2", fig["latency"]["inbound_p2"]),
        ("inbound latency, phase 3", fig["latency"]["inbound_p3"]),
        ("inbound latency, phase 4", fig["latency"]["inbound_p4"]),
        ("inbound, waiting for its append", fig["latency"]["inbound_append_wait"]),
        ("inbound, host after append's end", fig["latency"]["inbound_processing"]),
        ("outbound latency, idle queue (3)", fig["latency"]["outbound_p3_idle_queue"]),
        (f"outbound frame gap at {provider.title} (2)", fig["outbound_gap_p2"]),
    ]
    if (barge := fig["barge_in"]) is not None:
        rows += [
            (f"barge-in -> {provider.stop} (4)", barge["reaction"]),
            ("barge-in -> response.cancel (4)", barge["cancel_reaction"]),
            ("truncate point - heard (4)", barge["truncate_minus_heard"]),
        ]
    for title, s in rows:
        if s is None:  # needs tags
            lines.append(f"{title:<34}{'n/a':>9}")
            continue
        lines.append(
            f"{title:<34}{s['samples']:>9}{_ms(s['p50_ms']):>9}{_ms(s['p99_ms']):>9}{_ms(s['max_ms']):>9}"
        )
    f = fig["frames"]
    lines += [
        "",
        *(position_frame_lines(fig) if fig.get("frames_known_by") == "position" else tagged_frame_lines(f)),
    ]
    oddities = {
        k: v
        for k, v in f.items()
        if k in ("outbound_bad", "untagged_appends", "foreign_appends", f"{fig['provider']}_other_kinds")
        and v
    }
    if oddities or fig["probes_not_idle_within_1s"]:
        lines.append(f"oddities: {oddities} probes not idle within 1 s: {fig['probes_not_idle_within_1s']}")
    lines.extend(
        f"phase {titles[name]} skipped: {why}" for name, why in fig.get("phases_skipped", {}).items()
    )
    if barge is not None:
        lines += [
            f"barge-ins: {barge['attempted']} attempted, {barge['stopped']} got {provider.stop}, "
            f"{barge['response_cancel']} got response.cancel, {barge['truncated']} truncated; "
            f"frames {barge['frames_sent']} sent, {barge['frames_received']} received (the rest cut)",
            f"assistant audio after speech_started: {barge['messages_after_speech_started']} messages, "
            f"the latest {_ms(barge['latest_after_speech_started_ms'])} ms after; "
            f"> {barge['late_after_ms']:g} ms after: {barge['late_messages']} messages in "
            f"{barge['barge_ins_with_late_audio']} barge-ins; after {provider.stop}: "
            f"{barge['messages_after_stop']} messages; {provider.stop} without a barge-in: "
            f"{barge['stops_unmatched']}",
        ]
    if (marks := fig.get("twilio_marks")) is not None:
        lines.append(
            f"marks: {marks['received']} received (one per frame), {marks['echoed']} echoed once played, "
            f"{marks['not_echoed_at_end']} not echoed when the callers stopped"
        )
    b = fig["bench_self"]
    lines.append(
        f"bench itself: loop lag p99 {_ms(b['loop_lag']['p99_ms'])} ms (max {_ms(b['loop_lag']['max_ms'])}), "
        f"send lateness p99 {_ms(b['send_lateness']['p99_ms'])} ms"
    )
    h = fig["host"]
    lines.append(
        f"host: rss {h['rss_mb_at_end']} MB (idle {h['rss_mb_idle']} MB, {_ms(h['rss_kb_per_call'])} KB per call), "
        f"exit code {h['exit_code']}"
    )
    if len(h["workers"]) > 1:
        lines.append(
            "workers: "
            + "; ".join(
                f"pid {w['pid']} {w['calls']} calls, {_ms(w['cpu_per_call_second_ms'])} ms per call-second"
                for w in h["workers"]
            )
        )
    lines.extend(f"note: {n}" for n in fig["notes"])
    return "\n".join(lines)


@dataclass
class Outcome:
    figures: dict[str, Any] | None  # None: the run did not finish
    failure: str | None  # why the run failed, or the host's exit was not clean
    host_stdout: str = ""
    host_stderr: str = ""

    def report_failure(self) -> None:
        print(f"FAILED: {self.failure}", file=sys.stderr)
        print(f"--- media host stderr ---\n{self.host_stderr[-8000:]}", file=sys.stderr)
        print(f"--- media host stdout ---\n{self.host_stdout[-4000:]}", file=sys.stderr)


async def measure(provider: str, options: Options) -> Outcome:
    """One run, torn down whatever happens; prints nothing."""
    bench = Bench(PROVIDERS[provider](options.rate), options)
    figures: dict[str, Any] | None = None
    failure: str | None = None
    try:
        async with asyncio.timeout(options.total_seconds + 120):  # a hard bound on the whole run
            figures = await bench.run()
    except HostFailed as exc:
        failure = str(exc)
    except Exception as exc:  # report it with the host's output, after everything is torn down
        failure = "".join(traceback.format_exception(exc)).rstrip()
    finally:
        await bench.close()
    host = bench.host
    if host is None:
        return Outcome(figures, failure)
    try:
        out, err = host.output()
    finally:
        host.close()
    if failure is None and host.exit_code != 0:
        failure = f"media host exit code {host.exit_code} (expected 0)"
    if figures is not None:
        figures["host"]["exit_code"] = host.exit_code
        log_lines = [line for line in (out + err).splitlines() if line.strip()]
        figures["host"]["log_lines"] = len(log_lines)
        if log_lines:
            figures["notes"].append(f"media host logged {len(log_lines)} lines, first: {log_lines[0][:200]}")
    return Outcome(figures, failure, out, err)


async def amain(provider: str, options: Options) -> tuple[int, dict[str, Any] | None]:
    outcome = await measure(provider, options)
    if outcome.failure is not None:
        outcome.report_failure()
    if outcome.figures is not None:
        print(render(outcome.figures))
    return (0 if outcome.failure is None and outcome.figures is not None else 1), outcome.figures


def add_run_arguments(parser: argparse.ArgumentParser, seconds: float) -> None:
    """What `bench.media_load` and `bench.saturation` share: the provider, the phases, TLS and loops."""
    parser.add_argument(
        "--provider", choices=sorted(PROVIDERS), default="acs", help="whose calls (default acs)"
    )
    parser.add_argument(
        "--seconds", type=float, default=seconds, help=f"length of each phase (0-300, default {seconds:g})"
    )
    for number, phase in enumerate(PHASES, start=1):
        parser.add_argument(
            f"--{phase}-seconds", type=float, metavar="S", help=f"phase {number} only (0 skips it)"
        )
    parser.add_argument(
        "--tls", action="store_true", help="the model serves wss:// (a certificate made for the run)"
    )
    parser.add_argument(
        "--loop",
        choices=event_loop.LOOPS,
        help="the host's MEDIA_EVENT_LOOP; default: the host's own (uvloop)",
    )
    parser.add_argument(
        "--bench-loop",
        choices=event_loop.LOOPS,
        default="asyncio",
        help="this process's own event loop (default asyncio, as in earlier series; uvloop: more headroom "
        "on a small machine, but the host's CPU per call-second reads 12-16%% lower)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one more media host setting for the run, e.g. MEDIA_MODEL_APPEND_MS=20 (repeatable)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")


def phase_seconds(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, float]:
    own = {p: s for p in PHASES if (s := getattr(args, f"{p}_seconds")) is not None}
    seconds = every_phase(args.seconds, **own)
    if not all(0 <= s <= 300 for s in seconds.values()) or not any(seconds.values()):
        parser.error("phase lengths must be between 0 and 300 s, and at least one above 0")
    return seconds


def host_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    settings = dict(item.partition("=")[::2] for item in args.set)
    if not all(name.startswith(HOST_SETTING_PREFIXES) and name.isupper() for name in settings):
        parser.error(
            f"--set takes NAME=VALUE, NAME a media host setting ({', '.join(HOST_SETTING_PREFIXES)}...)"
        )
    return settings


def run_in_loop(args: argparse.Namespace, main: Coroutine[Any, Any, T]) -> T:
    """Runs the bench's `main` on `--bench-loop`, with room for every socket it will open."""
    raise_open_file_limit()  # two sockets per call here too: 1024 files would cap a run at ~500 calls
    return event_loop.run(main, {event_loop.SETTING: args.bench_loop})


def write_json(path: str | None, figures: Any) -> None:
    if path and figures is not None:
        Path(path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.media_load", description="Load bench for the media host (see bench/README.md)."
    )
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (1-500)")
    parser.add_argument(
        "--rate",
        type=int,
        choices=(16, 24),
        help="ACS callers' sample rate in kHz (default 24, a pass-through; 16: pcm16KMono, resampled "
        "to and from the model's 24 kHz, frames known by position, phase 4 skipped)",
    )
    add_run_arguments(parser, seconds=10.0)
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 500:
        parser.error("--calls must be between 1 and 500")
    if args.rate is not None and args.provider != "acs":
        parser.error("--rate is for --provider acs (Twilio streams μ-law at 8 kHz)")
    options = Options(
        args.calls,
        phase_seconds(parser, args),
        tls=args.tls,
        host_loop=args.loop,
        host_settings=host_settings(parser, args),
        rate=None if args.rate is None else args.rate * 1000,
    )
    code, figures = run_in_loop(args, amain(args.provider, options))
    write_json(args.json, figures)
    return code


if __name__ == "__main__":
    sys.exit(main())
