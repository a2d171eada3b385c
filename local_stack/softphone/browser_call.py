"""One browser softphone call: the page's WebSocket bridged to an emulated ACS call's media leg.

The browser stands where a phone would. "Call the assistant" has the ACS emulator ring our number
from a PSTN caller (Event Grid → incoming-call → answer → media streaming to /ws/media), and "Call me"
places a real outbound call (POST /api/calls) to the page's ACS user, which the emulator hands to
the page when it rings. Either way the page's microphone frames become the caller leg's audio and
what the media host streams back (AudioData, StopAudio) goes to the page as it arrives; nothing of
the product is short-circuited.

Page protocol (one WebSocket): binary frames are PCM16 little-endian mono at the call's rate, 20 ms
each, both ways. Text frames are JSON: the page sends `{"type": "call", "profile", "voice"}`,
`{"type": "await", "userId"}` (before asking for "Call me") or `{"type": "hangup"}`; the server sends
`state`, `media` (the call's rate), `clear` (StopAudio: empty playback now), `turn`, `answer`
(latency), `barge_in`, `tool`, `ended` (with the recording's links) and `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from common.telemetry import CallIds
from emulators.acs.emulator import AcsEmulator, EmulatedCall
from emulators.acs.media_leg import MediaLeg, Received
from media_host.call_events import (
    AssistantAudioStarted,
    BargedIn,
    CallEnded,
    CallEvent,
    MediaConnected,
    ToolUsed,
    TurnTaken,
)

log = logging.getLogger(__name__)

SOFTPHONE_CALLER = "+14255550199"  # the emulated PSTN number the browser calls from
RING_TIMEOUT_S = 30.0
MAX_FRAME_BYTES = 8 * 960  # a few 20 ms frames at 24 kHz; more in one message is a bad page
OUTBOX_LIMIT = 3000  # ~60 s of 20 ms frames: a page that stops reading loses audio, not memory


class PageError(Exception):
    """What the page asked for cannot be done; the message is shown to the person."""


@dataclass
class BrowserCall:
    """The bridge for one page socket. `events` is fed by the media host's call observer."""

    ws: web.WebSocketResponse
    started: float = field(default_factory=time.monotonic)
    call: EmulatedCall | None = None
    dropped_outgoing: int = 0
    bad_frames: int = 0
    _outbox: asyncio.Queue[bytes | str | None] = field(default_factory=asyncio.Queue)

    # -- to the page --------------------------------------------------------------------------
    def send(self, message: dict[str, Any] | bytes) -> None:
        if self._outbox.qsize() >= OUTBOX_LIMIT:
            self.dropped_outgoing += 1
            return
        self._outbox.put_nowait(message if isinstance(message, bytes) else json.dumps(message))

    def state(self, state: str, **details: Any) -> None:
        self.send({"type": "state", "state": state, "atMs": self.elapsed_ms(), **details})

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def pump(self) -> None:
        """The one writer of the page socket, in order: audio sent before `clear` is played before it."""
        while (item := await self._outbox.get()) is not None:
            try:
                if isinstance(item, bytes):
                    await self.ws.send_bytes(item)
                else:
                    await self.ws.send_str(item)
            except ConnectionError:
                return

    def close_outbox(self) -> None:
        self._outbox.put_nowait(None)

    # -- from the media leg and the media host ------------------------------------------------
    def attach(self, leg: MediaLeg) -> None:
        """Relay what the media host streams; what arrived before the page was attached comes first."""
        pending: list[Received] = []
        for received in leg.received:
            if received.kind == "StopAudio":
                pending.clear()
            elif received.kind == "AudioData":
                pending.append(received)
        for received in pending:
            self.on_media(received)
        leg.listeners.append(self.on_media)

    def on_media(self, received: Received) -> None:
        if received.kind == "AudioData":
            self.send(received.pcm)
        elif received.kind == "StopAudio":
            self.send({"type": "clear"})

    def on_call_event(self, event: CallEvent) -> None:
        if isinstance(event, MediaConnected):
            self.state("model", profile=event.profile)
        elif isinstance(event, TurnTaken):
            turn = event.turn
            self.send(
                {
                    "type": "turn",
                    "role": turn.role,
                    "text": turn.text,
                    "interrupted": turn.interrupted,
                    "atMs": self.elapsed_ms(),
                }
            )
        elif isinstance(event, AssistantAudioStarted):
            self.send(
                {
                    "type": "answer",
                    "turnLatencyMs": _ms(event.turn_latency_ms),
                    "firstAudioMs": _ms(event.first_audio_ms),
                    "atMs": self.elapsed_ms(),
                }
            )
        elif isinstance(event, BargedIn):
            self.send(
                {"type": "barge_in", "reactionMs": round(event.reaction_ms, 1), "atMs": self.elapsed_ms()}
            )
        elif isinstance(event, ToolUsed):
            self.send(
                {
                    "type": "tool",
                    "name": event.name,
                    "outcome": event.outcome,
                    "durationMs": round(event.duration_ms),
                    "atMs": self.elapsed_ms(),
                }
            )
        elif isinstance(event, CallEnded):
            self.send({"type": "media_ended", "why": event.why, "durationS": round(event.duration_s, 1)})

    # -- from the page ------------------------------------------------------------------------
    async def read_page(self, leg: MediaLeg, on_hang_up: Callable[[], Awaitable[None]]) -> None:
        """Microphone frames to the caller leg until the page hangs up or goes away."""
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                data = msg.data
                if len(data) % 2 or not 0 < len(data) <= MAX_FRAME_BYTES:
                    self.bad_frames += 1  # counted and dropped; the call goes on
                    continue
                leg.feed(data)
            elif msg.type == WSMsgType.TEXT and _message_type(msg.data) == "hangup":
                break
        await on_hang_up()


class CallRouter:
    """Which page each call belongs to: call events by call_connection_id, and outbound calls the
    emulator dials to a page's ACS user."""

    def __init__(self) -> None:
        self.by_call: dict[str, BrowserCall] = {}
        self.awaiting: dict[str, asyncio.Future[EmulatedCall]] = {}  # ACS user id -> its ringing call

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        page = self.by_call.get(ids.call_connection_id)
        if page is not None:
            page.on_call_event(event)

    def on_dialled(self, call: EmulatedCall) -> None:
        waiting = self.awaiting.pop(str(call.callee.get("rawId", "")), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(call)


async def bridge(page: BrowserCall, call: EmulatedCall, emulator: AcsEmulator, router: CallRouter) -> str:
    """Follow a ringing call to its end with the page as the caller (or callee); returns the end reason."""
    page.call = call
    try:
        async with asyncio.timeout(RING_TIMEOUT_S):
            await _first(call.connected.wait(), call.ended.wait())
    except TimeoutError:
        raise PageError("the call was not answered in time") from None
    if call.ended.is_set():
        return call.end_reason or "ended"
    assert call.call_connection_id is not None
    router.by_call[call.call_connection_id] = page
    page.state("connected", callConnectionId=call.call_connection_id)
    await call.media_ready.wait()
    leg = call.leg
    if leg is None:
        raise PageError("media streaming failed: the media host could not be reached")
    page.send({"type": "media", "sampleRate": leg.sample_rate})
    page.attach(leg)

    async def hang_up() -> None:
        if not call.ended.is_set():
            await emulator.caller_hangs_up(call)

    reader = asyncio.create_task(page.read_page(leg, hang_up))
    try:
        await call.ended.wait()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        with contextlib.suppress(ValueError):
            leg.listeners.remove(page.on_media)
    return call.end_reason or "ended"


async def _first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _message_type(data: str) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    return str(value.get("type", "")) if isinstance(value, dict) else ""


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)
