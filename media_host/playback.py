"""Model audio to the caller: exact 20 ms frames of the leg's audio, paced on a monotonic clock.

A leg plays what it is sent in real time, so we keep only a small lead of audio ahead of its playout
point: enough that it never starves on scheduler jitter, little enough that barge-in stays sharp
and `audio_end_ms` for truncation is close to what the caller really heard.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .audio import FRAME_MS
from .audio_paths import LegAudio, ToLeg, cutter

FRAME_S = FRAME_MS / 1000
UNDERRUN_TOLERANCE_S = 0.005
# uvloop's timers count whole milliseconds: a shorter sleep returns at once, and the pump would spin
# until the moment came. Sending up to 1 ms early is nothing against the playback lead.
MIN_SLEEP_S = 0.001


@dataclass(slots=True)
class _Frame:
    response_id: str
    item_id: str
    pcm: bytes
    real_bytes: int  # excludes the silence that pads an item's last frame


@dataclass
class PlaybackStats:
    frames_sent: int = 0
    underruns: int = 0  # ACS ran dry while an item still had audio to come
    max_queue_depth: int = 0
    overflow_dropped: int = 0
    interrupted_frames: int = 0


@dataclass(frozen=True)
class Interrupted:
    response_id: str
    item_id: str
    audio_end_ms: int  # audio of this item the leg had played: sent, less what it still held


@dataclass
class _ItemProgress:
    response_id: str
    sent_bytes: int = 0
    queued: int = 0  # frames still waiting: the item is forgotten once none are and another plays


class Playback:
    def __init__(
        self,
        send: Callable[[bytes, str, int], Awaitable[None]],
        *,
        leg: LegAudio,
        to_leg: ToLeg,
        lead_ms: int,
        chunk_ms: int = FRAME_MS,
        max_queued_seconds: float,
        on_item_started: Callable[[str, float], None] = lambda item_id, at: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send  # (frame, item id, bytes of the item sent so far): the leg wraps it for its wire
        self._on_item_started = on_item_started
        self._clock = clock
        self._lead = lead_ms / 1000
        self._chunk_frames = max(1, chunk_ms // FRAME_MS)  # frames per message to the leg
        self._max_frames = int(max_queued_seconds * 1000 / FRAME_MS)
        self._queue: deque[_Frame] = deque()
        self._wake = asyncio.Event()
        self._deadline = 0.0  # when the leg finishes playing everything sent so far
        self._items: dict[str, _ItemProgress] = {}
        self._last_item: str | None = None
        self._item_in: str | None = None  # the item whose audio the converter is in the middle of
        self.stats = PlaybackStats()
        self.set_format(leg, to_leg)

    def set_format(self, leg: LegAudio, to_leg: ToLeg) -> None:
        self._bytes_per_ms = leg.bytes_per_ms
        self._to_leg = to_leg
        self._cutter = cutter(leg)

    # -- fed by the session ------------------------------------------------------------------
    def push(self, response_id: str, item_id: str, audio: bytes) -> None:
        if item_id != self._item_in:  # a new item: no half sample of the last one may leak into it
            self._to_leg.clear()
            self._item_in = item_id
        for frame in self._cutter.push(self._to_leg.process(audio)):
            self._enqueue(_Frame(response_id, item_id, frame, len(frame)))

    def finish_item(self, response_id: str, item_id: str) -> None:
        """The model's audio for this item is complete: emit what the converter and cutter hold."""
        self._item_in = None
        for frame in self._cutter.push(self._to_leg.flush()):
            self._enqueue(_Frame(response_id, item_id, frame, len(frame)))
        tail, real = self._cutter.flush_padded()
        if tail is not None:
            self._enqueue(_Frame(response_id, item_id, tail, real))

    def interrupt(self) -> Interrupted | None:
        """Barge-in: drop everything queued. Returns the item the caller was hearing, if any."""
        now = self._clock()
        playing = self._last_item if self._last_item is not None and now < self._deadline else None
        if self._queue:
            playing = playing or self._queue[0].item_id
        self.stats.interrupted_frames += len(self._queue)
        self._queue.clear()
        self._cutter.clear()
        self._to_leg.clear()
        self._item_in = None
        deadline, self._deadline = self._deadline, now  # the leg flushes its buffer too (StopAudio, clear)
        items, self._items = self._items, {}
        if playing is None:
            return None
        item = self._items[playing] = items[playing]
        item.queued = 0
        # The leg was still to play what was sent in the last `deadline - now`: not heard.
        unplayed_ms = max(0.0, deadline - now) * 1000 if playing == self._last_item else 0.0
        heard_ms = max(0, int(item.sent_bytes / self._bytes_per_ms - unplayed_ms))
        return Interrupted(item.response_id, playing, heard_ms)

    def _progress(self, response_id: str, item_id: str) -> _ItemProgress:
        progress = self._items.get(item_id)
        if progress is None:
            progress = self._items[item_id] = _ItemProgress(response_id)
        return progress

    def _forget_played(self, item_id: str | None) -> None:
        """A model can start any number of items in a call: keep only those still to be heard."""
        if item_id is not None and (item := self._items.get(item_id)) is not None and not item.queued:
            del self._items[item_id]

    def _enqueue(self, frame: _Frame) -> None:
        if len(self._queue) >= self._max_frames:
            self.stats.overflow_dropped += 1
            return
        self._queue.append(frame)
        self._progress(frame.response_id, frame.item_id).queued += 1
        self.stats.max_queue_depth = max(self.stats.max_queue_depth, len(self._queue))
        self._wake.set()

    # -- state --------------------------------------------------------------------------------
    @property
    def playing(self) -> bool:
        return bool(self._queue) or self._clock() < self._deadline

    async def wait_played(self) -> None:
        """Until everything queued has been sent and ACS has had time to play it."""
        while self.playing:  # noqa: ASYNC110 - "played" is a point in time, not an event
            await asyncio.sleep(max(self._deadline - self._clock(), FRAME_S))

    # -- the pump -----------------------------------------------------------------------------
    async def run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            now = self._clock()
            wait = self._deadline - self._lead - now
            if wait > MIN_SLEEP_S:
                await asyncio.sleep(wait)
                continue  # the queue may have been cleared by a barge-in meanwhile
            chunk = self._next_chunk()
            item_id = chunk[0].item_id
            item = self._items[item_id]
            if now > self._deadline:
                if item_id == self._last_item and now - self._deadline > UNDERRUN_TOLERANCE_S:
                    self.stats.underruns += 1
                self._deadline = now
            self._deadline += FRAME_S * len(chunk)
            if item_id != self._last_item:
                self._on_item_started(item_id, now)
                self._forget_played(self._last_item)
            self._last_item = item_id
            item.sent_bytes += sum(frame.real_bytes for frame in chunk)
            item.queued -= len(chunk)
            self.stats.frames_sent += len(chunk)
            pcm = chunk[0].pcm if len(chunk) == 1 else b"".join(frame.pcm for frame in chunk)
            await self._send(pcm, item_id, item.sent_bytes)

    def _next_chunk(self) -> list[_Frame]:
        """Up to a chunk of queued frames of one item, in one message: fewer messages (and wake-ups)
        per call-second. What is queued goes now; the pump never waits to fill a chunk."""
        first = self._queue.popleft()
        chunk = [first]
        while len(chunk) < self._chunk_frames and self._queue and self._queue[0].item_id == first.item_id:
            chunk.append(self._queue.popleft())
        return chunk
