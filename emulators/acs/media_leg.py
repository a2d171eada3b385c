"""The ACS side of a media stream: dials the transport URL the way ACS does.

It sends the upgrade with ACS's headers and JWT, then `AudioMetadata` and 20 ms `AudioData`
frames, and records every message the media host sends back with its arrival time. Like ACS, a
live leg (`start_stream`) sends a frame every 20 ms whether the caller speaks or not (`silent`
flags the quiet ones); `say()` queues the caller's speech into that stream. ACS plays the audio it
receives in real time and `StopAudio` discards what it still holds; `heard()` replays the
recording through that model, so a test can ask what the caller actually heard, and when.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from emulators.serving import dial

log = logging.getLogger(__name__)

FRAME_S = 0.020
# A live caller (the browser softphone) sends frames on its own clock, in small bursts: two frames are
# held before speaking starts, so a late frame does not become a gap mid-word, and beyond ten (200 ms)
# the oldest are dropped, so a faster sender does not build up delay.
LIVE_START_FRAMES = 2
LIVE_BACKLOG_FRAMES = 10


@dataclass(frozen=True)
class Received:
    at: float  # time.monotonic() on arrival
    message: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.message.get("Kind") or self.message.get("kind"))

    @property
    def pcm(self) -> bytes:
        return base64.b64decode(self.message["AudioData"]["Data"])


@dataclass(frozen=True)
class HeardFrame:
    start: float  # monotonic time the caller began hearing it
    pcm: bytes


@dataclass
class MediaLeg:
    sample_rate: int = 24_000
    call_connection_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dtmf_enabled: bool = True  # ACS streams keys only when media streaming asked for them (enableDtmfTones)
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: list[Received] = field(default_factory=list)
    sent_frames: int = 0
    connected_at: float = 0.0  # monotonic time the upgrade succeeded
    spoken: list[tuple[float, bytes]] = field(default_factory=list)  # caller speech frames, by send time
    # told of every message the media host sends, as it arrives (a softphone relays them to a browser)
    listeners: list[Callable[[Received], None]] = field(default_factory=list)
    dropped_live_frames: int = 0
    failed_listeners: int = 0
    # ACS's playout, kept up to date as messages arrive (polling it must stay cheap: it shares the loop)
    _by_kind: dict[str, list[Received]] = field(default_factory=dict)
    _played: list[HeardFrame] = field(default_factory=list)  # heard for sure (before a StopAudio)
    _queued: list[HeardFrame] = field(default_factory=list)  # will be heard unless a StopAudio comes first
    _playing_until: float = 0.0
    _speech: deque[tuple[bytes, asyncio.Future[None] | None]] = field(default_factory=deque)
    _live: deque[bytes] = field(default_factory=deque)  # a live caller's frames (`feed`)
    _live_remainder: bytes = b""
    _live_flowing: bool = False
    _streamer: asyncio.Task[None] | None = None
    _session: aiohttp.ClientSession | None = None
    _ws: aiohttp.ClientWebSocketResponse | None = None
    _reader: asyncio.Task[None] | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def frame_bytes(self) -> int:
        return self.sample_rate // 50 * 2

    async def connect(
        self, url: str, token: str | None, *, extra_headers: dict[str, str] | None = None
    ) -> None:
        headers = {
            "x-ms-call-connection-id": self.call_connection_id,
            "x-ms-call-correlation-id": self.correlation_id,
        }
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(extra_headers or {})
        self._session, self._ws = await dial(url, headers)
        self.connected_at = time.monotonic()
        self._reader = asyncio.create_task(self._read())
        await self.send_json(
            {
                "kind": "AudioMetadata",
                "audioMetadata": {
                    "subscriptionId": str(uuid.uuid4()),
                    "encoding": "PCM",
                    "sampleRate": self.sample_rate,
                    "channels": 1,
                    "length": self.frame_bytes,
                },
            }
        )

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                received = Received(time.monotonic(), json.loads(msg.data))
                self.received.append(received)
                self._by_kind.setdefault(received.kind, []).append(received)
                self._play(received)
                self._arrived.set()
                for listener in list(self.listeners):
                    try:
                        listener(received)
                    except Exception:  # a listener's bug must not stop the call's media
                        self.failed_listeners += 1
                        log.exception("media leg listener failed")

    def _play(self, r: Received) -> None:
        """ACS plays frames back to back in real time; StopAudio drops what it has not played yet."""
        if r.kind == "AudioData":  # a message may hold several 20 ms frames: StopAudio can cut between them
            pcm, step = r.pcm, self.frame_bytes
            for offset in range(0, len(pcm), step):
                start = max(r.at, self._playing_until)
                self._queued.append(HeardFrame(start, pcm[offset : offset + step]))
                self._playing_until = start + FRAME_S
        elif r.kind == "StopAudio":
            self._played.extend(f for f in self._queued if f.start < r.at)
            self._queued.clear()
            self._playing_until = r.at

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message))

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None
        await self._ws.send_str(text)

    async def send_audio(self, pcm: bytes, *, silent: bool = False) -> None:
        await self.send_json(
            {
                "kind": "AudioData",
                "audioData": {
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                    "participantRawID": "4:+14255550123",
                    "data": base64.b64encode(pcm).decode("ascii") if pcm else "",
                    "silent": silent,
                },
            }
        )
        self.sent_frames += 1

    async def press(self, tone: str) -> bool:
        """The caller presses a key: a `DtmfData` message, if the stream asked for keys (else ACS keeps
        them to itself). Returns whether it was sent."""
        if self.dtmf_enabled:
            await self.send_json({"kind": "DtmfData", "dtmfData": {"data": tone}})
        return self.dtmf_enabled

    async def stream(self, pcm: bytes, *, realtime: bool = True) -> None:
        """Send `pcm` as 20 ms frames, paced like ACS when `realtime`; silent frames are flagged."""
        step = self.frame_bytes
        start = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), step)):
            frame = pcm[offset : offset + step].ljust(step, b"\0")
            await self.send_audio(frame, silent=not any(frame))
            if realtime:
                await asyncio.sleep(max(0.0, start + (n + 1) * FRAME_S - time.monotonic()))

    def start_stream(self) -> None:
        """Send a frame every 20 ms from now on, on a monotonic clock, as ACS does for a live call."""
        self._streamer = asyncio.create_task(self._stream_forever())

    def say(self, pcm: bytes) -> asyncio.Future[None]:
        """Queue caller speech; the future completes when its last frame has been sent."""
        step = self.frame_bytes
        frames = [pcm[i : i + step].ljust(step, b"\0") for i in range(0, len(pcm), step)]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for n, frame in enumerate(frames):
            self._speech.append((frame, done if n == len(frames) - 1 else None))
        if not frames:
            done.set_result(None)
        return done

    def feed(self, pcm: bytes) -> None:
        """Live caller audio in pieces of any size, sent as whole frames on the leg's 20 ms clock."""
        data = self._live_remainder + pcm
        step = self.frame_bytes
        whole = len(data) - len(data) % step
        self._live.extend(data[i : i + step] for i in range(0, whole, step))
        self._live_remainder = data[whole:]
        while len(self._live) > LIVE_BACKLOG_FRAMES:
            self._live.popleft()
            self.dropped_live_frames += 1

    def _next_live_frame(self) -> bytes | None:
        if not self._live_flowing and len(self._live) >= LIVE_START_FRAMES:
            self._live_flowing = True
        if not self._live_flowing:
            return None
        if not self._live:
            self._live_flowing = False  # ran dry: hold the next frames again before sending them
            return None
        return self._live.popleft()

    def drop_audio(self) -> None:
        """Forget the audio kept for `heard()` and recordings (once a call is saved, say), keeping the rest."""
        for kept in (self.received, self.spoken, self._played, self._queued):
            kept.clear()
        self._by_kind.clear()

    @property
    def speaking(self) -> bool:
        return bool(self._speech)

    async def _stream_forever(self) -> None:
        start = time.monotonic()
        silence = bytes(self.frame_bytes)
        n = 0
        while not self.closed:
            try:
                live = None if self._speech else self._next_live_frame()
                if self._speech:
                    frame, done = self._speech.popleft()
                    self.spoken.append((time.monotonic(), frame))
                    await self.send_audio(frame)
                    if done is not None and not done.done():
                        done.set_result(None)
                elif live is not None:
                    self.spoken.append((time.monotonic(), live))
                    await self.send_audio(live, silent=not any(live))
                else:
                    await self.send_audio(silence, silent=True)
            except ConnectionError:
                return  # the media host closed the stream
            n += 1
            await asyncio.sleep(max(0.0, start + n * FRAME_S - time.monotonic()))

    def last_heard(self) -> HeardFrame | None:
        return self._queued[-1] if self._queued else self._played[-1] if self._played else None

    def assistant_quiet_for(self) -> float:
        """Seconds since the caller last heard assistant audio (inf if never)."""
        last = self.last_heard()
        return float("inf") if last is None else time.monotonic() - (last.start + FRAME_S)

    def write_recording(self, path: Path, *, since: float | None = None) -> float:
        """A stereo WAV, caller left and assistant right, as each was heard; returns its length in s."""
        heard = self.heard()
        starts = [t for t, _ in self.spoken] + [f.start for f in heard]
        origin = since if since is not None else min(starts, default=time.monotonic())
        end = max([t + FRAME_S for t in starts], default=origin)
        length = int((end - origin) * self.sample_rate) + 1
        stereo = np.zeros((length, 2), dtype="<i2")
        for channel, frames in ((0, self.spoken), (1, [(f.start, f.pcm) for f in heard])):
            for at, pcm in frames:
                samples = np.frombuffer(pcm, dtype="<i2")
                offset = max(0, int((at - origin) * self.sample_rate))
                stereo[offset : offset + samples.size, channel] = samples[: max(0, length - offset)]
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(self.sample_rate)
            out.writeframes(stereo.tobytes())
        return length / self.sample_rate

    async def wait_for(self, kind: str, *, count: int = 1, timeout: float = 5.0) -> Received:
        """The `count`-th message of `kind` (waiting for it)."""
        async with asyncio.timeout(timeout):
            while True:
                matches = self._by_kind.get(kind, [])
                if len(matches) >= count:
                    return matches[count - 1]
                self._arrived.clear()
                await self._arrived.wait()

    def of_kind(self, kind: str) -> list[Received]:
        return list(self._by_kind.get(kind, []))

    def audio_received(self) -> bytes:
        return b"".join(r.pcm for r in self.of_kind("AudioData"))

    def heard(self) -> list[HeardFrame]:
        """What the caller heard (or is about to): frames play back to back in real time; StopAudio drops the rest."""
        return self._played + self._queued

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    @property
    def close_code(self) -> int | None:
        return None if self._ws is None else self._ws.close_code

    async def wait_closed(self, timeout: float = 5.0) -> None:
        if self._reader is not None:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._reader)

    async def close(self) -> None:
        if self._streamer is not None:
            self._streamer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._streamer
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()
