"""The ACS side of a media stream: dials the transport URL the way ACS does.

It sends the upgrade with ACS's headers and JWT, then `AudioMetadata` and 20 ms `AudioData`
frames, and records every message the media host sends back with its arrival time. ACS plays the
audio it receives in real time and `StopAudio` discards what it still holds; `heard()` replays the
recording through that model, so a test can ask what the caller actually heard, and when.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

FRAME_S = 0.020


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
    correlation_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: list[Received] = field(default_factory=list)
    sent_frames: int = 0
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
        self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(url, headers=headers, max_msg_size=0)
        except BaseException:
            await self._session.close()
            raise
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
                self.received.append(Received(time.monotonic(), json.loads(msg.data)))
                self._arrived.set()

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

    async def stream(self, pcm: bytes, *, realtime: bool = True) -> None:
        """Send `pcm` as 20 ms frames, paced like ACS when `realtime`; silent frames are flagged."""
        step = self.frame_bytes
        start = time.monotonic()
        for n, offset in enumerate(range(0, len(pcm), step)):
            frame = pcm[offset : offset + step].ljust(step, b"\0")
            await self.send_audio(frame, silent=not any(frame))
            if realtime:
                await asyncio.sleep(max(0.0, start + (n + 1) * FRAME_S - time.monotonic()))

    async def wait_for(self, kind: str, *, count: int = 1, timeout: float = 5.0) -> Received:
        """The `count`-th message of `kind` (waiting for it)."""
        async with asyncio.timeout(timeout):
            while True:
                matches = [r for r in self.received if r.kind == kind]
                if len(matches) >= count:
                    return matches[count - 1]
                self._arrived.clear()
                await self._arrived.wait()

    def of_kind(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    def audio_received(self) -> bytes:
        return b"".join(r.pcm for r in self.of_kind("AudioData"))

    def heard(self) -> list[HeardFrame]:
        """What the caller heard: frames play back to back in real time; StopAudio drops the rest."""
        heard: list[HeardFrame] = []
        playing_until = 0.0
        buffered: list[HeardFrame] = []
        for r in self.received:
            if r.kind == "AudioData":
                start = max(r.at, playing_until)
                buffered.append(HeardFrame(start, r.pcm))
                playing_until = start + FRAME_S
            elif r.kind == "StopAudio":
                heard.extend(f for f in buffered if f.start < r.at)
                buffered = []
                playing_until = r.at
        return heard + buffered

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
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._session is not None:
            await self._session.close()
