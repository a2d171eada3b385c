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
(latency), `barge_in`, `tool`, `media_ended`, `ended` (with the recording's links) and `error`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
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

from ..waiting import first_set

log = logging.getLogger(__name__)

SOFTPHONE_CALLER = "+14255550199"  # the emulated PSTN number the browser calls from
RING_TIMEOUT_S = 30.0
MEDIA_TIMEOUT_S = 15.0  # answered -> the media stream is up
MAX_FRAME_BYTES = 8 * 960  # a few 20 ms frames at 24 kHz; more in one message is a bad page
AUDIO_BACKLOG = 3000  # ~60 s of 20 ms frames: a page that stops reading loses audio, not memory


class PageError(Exception):
    """What the page asked for cannot be done; the message is shown to the person."""


@dataclass
class BrowserCall:
    """The bridge for one page socket. `on_call_event` is fed by the media host's call observer."""

    ws: web.WebSocketResponse
    started: float = field(default_factory=time.monotonic)
    call: EmulatedCall | None = None
    dropped_audio: int = 0  # frames to the page dropped because it stopped reading
    bad_frames: int = 0  # page audio that was not whole PCM16 samples of a sane size
    bad_messages: int = 0  # page text that was not a message we know
    hang_up_asked: asyncio.Event = field(default_factory=asyncio.Event)
    _outbox: deque[bytes | str] = field(default_factory=deque)
    _queued_audio: int = 0
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _closed: bool = False

    # -- to the page --------------------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        """Control messages are never dropped: there are few, and each changes what the page shows."""
        self._put(json.dumps(message))

    def send_audio(self, pcm: bytes) -> None:
        if self._queued_audio >= AUDIO_BACKLOG:
            self.dropped_audio += 1
            return
        self._queued_audio += 1
        self._put(pcm)

    def clear_audio(self) -> None:
        """StopAudio: audio still queued for the page would be played and then cleared; drop it here."""
        kept = [item for item in self._outbox if isinstance(item, str)]
        self._outbox = deque(kept)
        self._queued_audio = 0
        self.send({"type": "clear", "atWallMs": time.time() * 1000})

    def _put(self, item: bytes | str) -> None:
        if not self._closed:
            self._outbox.append(item)
            self._ready.set()

    def state(self, state: str, **details: Any) -> None:
        self.send({"type": "state", "state": state, "atMs": self.elapsed_ms(), **details})

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def pump(self) -> None:
        """The one writer of the page socket, in order: audio sent before `clear` is played before it."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._outbox:
                item = self._outbox.popleft()
                try:
                    if isinstance(item, bytes):
                        self._queued_audio -= 1
                        await self.ws.send_bytes(item)
                    else:
                        await self.ws.send_str(item)
                except ConnectionError:
                    return
            if self._closed:
                return

    def close_outbox(self) -> None:
        """Send what is queued, then stop the pump."""
        self._closed = True
        self._ready.set()

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
            self.send_audio(received.pcm)
        elif received.kind == "StopAudio":
            self.clear_audio()

    def on_call_event(self, event: CallEvent) -> None:
        at = self.elapsed_ms()
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
                    "atMs": at,
                }
            )
        elif isinstance(event, AssistantAudioStarted):
            latency, first = _ms(event.turn_latency_ms), _ms(event.first_audio_ms)
            self.send({"type": "answer", "turnLatencyMs": latency, "firstAudioMs": first, "atMs": at})
        elif isinstance(event, BargedIn):
            self.send({"type": "barge_in", "reactionMs": round(event.reaction_ms, 1), "atMs": at})
        elif isinstance(event, ToolUsed):
            outcome, took = event.outcome, round(event.duration_ms)
            self.send(
                {"type": "tool", "name": event.name, "outcome": outcome, "durationMs": took, "atMs": at}
            )
        elif isinstance(event, CallEnded):
            self.send({"type": "media_ended", "why": event.why, "durationS": round(event.duration_s, 1)})

    # -- from the page ------------------------------------------------------------------------
    async def read_page(self) -> None:
        """Microphone frames to the caller leg (once there is one) until the page hangs up or goes."""
        async for msg in self.ws:
            if msg.type == WSMsgType.BINARY:
                data = msg.data
                if len(data) % 2 or not 0 < len(data) <= MAX_FRAME_BYTES:
                    self.bad_frames += 1  # counted and dropped; the call goes on
                elif self.call is not None and self.call.leg is not None:
                    self.call.leg.feed(data)
            elif msg.type == WSMsgType.TEXT and message_type(msg.data) == "hangup":
                break
            else:
                self.bad_messages += 1
        self.hang_up_asked.set()

    def dropped(self) -> dict[str, int]:
        leg = None if self.call is None else self.call.leg
        return {
            "badFrames": self.bad_frames,
            "badMessages": self.bad_messages,
            "droppedAudio": self.dropped_audio,
            "droppedMicFrames": 0 if leg is None else leg.dropped_live_frames,
        }


class CallRouter:
    """Which page each call belongs to: call events by call_connection_id, and outbound calls the
    emulator dials to a page's ACS user."""

    def __init__(self) -> None:
        self.by_call: dict[str, BrowserCall] = {}
        self.awaiting: dict[str, asyncio.Future[EmulatedCall]] = {}  # ACS user id -> its ringing call
        self.pages: set[web.WebSocketResponse] = set()  # open page sockets, closed on shutdown

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        page = self.by_call.get(ids.call_connection_id)
        if page is not None:
            page.on_call_event(event)

    def on_dialled(self, call: EmulatedCall) -> None:
        waiting = self.awaiting.pop(str(call.callee.get("rawId", "")), None)
        if waiting is not None and not waiting.done():
            waiting.set_result(call)

    def forget(self, call_connection_id: str, page: BrowserCall) -> None:
        if self.by_call.get(call_connection_id) is page:
            del self.by_call[call_connection_id]


async def bridge(page: BrowserCall, call: EmulatedCall, emulator: AcsEmulator, router: CallRouter) -> None:
    """Follow a ringing call to its end with the page as the caller (or callee). Whatever happens, the
    call does not outlive the bridge: afterwards `call.end_reason` says how it ended."""
    page.call = call
    reader = asyncio.create_task(page.read_page())  # a hang-up counts from the first ring
    try:
        if not await first_set(call.connected, call.ended, page.hang_up_asked, timeout=RING_TIMEOUT_S):
            raise PageError("the call was not answered in time")
        if call.ended.is_set() or page.hang_up_asked.is_set():
            return
        assert call.call_connection_id is not None
        router.by_call[call.call_connection_id] = page
        page.state("connected", callConnectionId=call.call_connection_id)
        if not await first_set(call.media_ready, call.ended, page.hang_up_asked, timeout=MEDIA_TIMEOUT_S):
            raise PageError("the media stream did not start")
        leg = call.leg
        if leg is None and not call.ended.is_set() and not page.hang_up_asked.is_set():
            raise PageError("media streaming failed: the media host could not be reached")
        if leg is not None:
            page.send({"type": "media", "sampleRate": leg.sample_rate})
            page.attach(leg)
        await first_set(call.ended, page.hang_up_asked)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        if call.leg is not None:
            with contextlib.suppress(ValueError):
                call.leg.listeners.remove(page.on_media)
        if not call.ended.is_set():
            await emulator.caller_hangs_up(call)  # the page is gone, or gave up: so does its caller
        if call.call_connection_id:
            router.forget(call.call_connection_id, page)
        counts = page.dropped()
        if any(counts.values()):
            log.warning("softphone call %s dropped: %s", call.call_connection_id, counts)


def message_type(data: str) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return ""
    return str(value.get("type", "")) if isinstance(value, dict) else ""


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value)
