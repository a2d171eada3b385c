"""Twilio's side of a bidirectional media stream (`<Connect><Stream>`), twilio-openai.md §3.

It dials the stream URL as Twilio does (`X-Twilio-Signature` over the URL, no params, on the
upgrade), sends `connected` and `start`, then one 20 ms μ-law `media` message every 20 ms on a
monotonic clock, silence (0xFF) unless the caller speaks (`say`), `dtmf` when asked and `stop` at
the end. Of what comes back it takes only what Twilio takes: `media`, `mark` and `clear` carrying
this stream's sid, nothing more; anything else is recorded as the warning Twilio would log (31950
binary, 31951 invalid) and ignored.

Playout is modelled on the same clock: audio plays back to back in real time from its arrival; a
mark is echoed once the audio sent before it has played; `clear` drops what has not played and
echoes every outstanding mark at once, although that audio never played (§3.3). `heard()` is what
the caller heard, or will hear unless a `clear` comes first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
import wave
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import aiohttp
import msgspec
import numpy as np
import soxr

from common.twilio_auth import twilio_signature
from emulators.serving import dial
from media_host.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from media_host.twilio_media import MULAW_8K_MONO
from media_host.wire import WireError, decode

from .waiting import Changes

RATE = 8000
FRAME_S = 0.020
FRAME_BYTES = 160
SILENCE = b"\xff" * FRAME_BYTES
DTMF_DIGITS = frozenset("0123456789*#")
INVALID_MESSAGE = 31951
BINARY_MESSAGE = 31950


def new_sid(prefix: str) -> str:
    """A fresh Twilio SID of the kind `prefix` names (`CA` call, `AC` account, `MZ` stream)."""
    return prefix + secrets.token_hex(16)


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() when it was sent or arrived
    message: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.message["event"])


@dataclass(frozen=True)
class HeardAudio:
    start: float  # monotonic time the caller began hearing it
    ulaw: bytes

    @property
    def end(self) -> float:
        return self.start + len(self.ulaw) / RATE


@dataclass(frozen=True)
class EchoedMark:
    name: str
    sent_at: float  # when the media host sent it
    echoed_at: float
    played: bool  # False: echoed because a `clear` dropped the audio before it


@dataclass(frozen=True)
class StreamWarning:
    at: float
    code: int  # Twilio's: 31950 binary frame, 31951 invalid message
    reason: str


# What Twilio accepts from the media host, exactly: any other field earns a 31951 (§3.2).
class _Payload(msgspec.Struct, forbid_unknown_fields=True):
    payload: bytes  # base64 on the wire


class _MarkName(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1)]


class _Media(msgspec.Struct, tag_field="event", tag="media", rename="camel", forbid_unknown_fields=True):
    stream_sid: str
    media: _Payload


class _Mark(msgspec.Struct, tag_field="event", tag="mark", rename="camel", forbid_unknown_fields=True):
    stream_sid: str
    mark: _MarkName


class _Clear(msgspec.Struct, tag_field="event", tag="clear", rename="camel", forbid_unknown_fields=True):
    stream_sid: str


_OUTBOUND = msgspec.json.Decoder(_Media | _Mark | _Clear)


@dataclass
class _PendingMark:
    name: str
    sent_at: float
    due: float  # when the audio before it will have played
    played: bool = True


class MediaStream:
    sample_rate = RATE  # of the PCM `say` takes unless told otherwise: Twilio's own rate

    def __init__(self, account_sid: str, call_sid: str, *, name: str | None = None) -> None:
        self.account_sid = account_sid
        self.call_sid = call_sid
        self.stream_sid = new_sid("MZ")
        self.name = name
        self.sent: list[Message] = []
        self.received: list[Message] = []  # valid messages only
        self.warnings: list[StreamWarning] = []
        self.marks: list[EchoedMark] = []
        self.clears: list[float] = []  # monotonic arrival times
        self.spoken: list[tuple[float, bytes]] = []  # the caller's speech frames (μ-law), by stream time
        self.connected_at = 0.0
        self.stop_sent = False
        self._sequence = 0
        self._played: list[HeardAudio] = []  # heard for sure (cut at a clear)
        self._queued: list[HeardAudio] = []  # heard unless a clear comes first
        self._playing_until = 0.0
        self._pending: deque[_PendingMark] = deque()
        self._mark_due = asyncio.Event()
        self._speech: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self._changes = Changes()
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- the socket -------------------------------------------------------------------------------
    async def connect(
        self,
        url: str,
        parameters: dict[str, str],
        *,
        auth_token: str | None,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        """Dial `url` signed with `auth_token` (None: unsigned), send `connected` and `start` with
        `parameters` as customParameters, then stream. Raises aiohttp's errors when the upgrade fails."""
        headers = {} if auth_token is None else {"X-Twilio-Signature": twilio_signature(auth_token, url, {})}
        headers.update(extra_headers or {})
        self._session, self._ws = await dial(url, headers, timeout=aiohttp.ClientTimeout(total=10))
        self.connected_at = time.monotonic()
        await self.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        start = {
            "accountSid": self.account_sid,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": parameters,
            "mediaFormat": msgspec.to_builtins(MULAW_8K_MONO),
        }
        await self._send_event("start", start=start)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(t) for t in (self._read(), self._stream(), self._echo_marks())]

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(message))
        self.sent.append(Message(time.monotonic(), message))

    async def send_raw(self, text: str) -> None:
        assert self._ws is not None, "connect() first"
        await self._ws.send_str(text)

    async def _send_event(self, event: str, **body: Any) -> None:
        self._sequence += 1  # one counter for every message after `connected`; `start` is 1
        await self.send_json(
            {"event": event, "sequenceNumber": str(self._sequence), "streamSid": self.stream_sid, **body}
        )

    async def stop(self) -> None:
        """End the stream as Twilio does when the call leaves `<Connect>`: `stop`, then close.
        Also releases everything once the media host has closed the socket; safe to repeat."""
        if self._ws is not None and not self._ws.closed and not self.stop_sent:
            self.stop_sent = True
            stop = {"accountSid": self.account_sid, "callSid": self.call_sid}
            with contextlib.suppress(ConnectionError):
                await self._send_event("stop", stop=stop)
            await self._ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    @property
    def closed(self) -> bool:
        return self._ws is None or self._ws.closed

    async def wait_closed(self, timeout: float | None = 5.0) -> None:
        # The reader ends with the socket; asyncio.wait, unlike awaiting it, never raises its outcome.
        if self._tasks and not (await asyncio.wait(self._tasks[:1], timeout=timeout))[0]:
            raise TimeoutError("the media stream is still open")

    # -- the caller -------------------------------------------------------------------------------
    def say(self, pcm: bytes, rate: int = RATE) -> asyncio.Future[None]:
        """Queue the caller's speech (16-bit mono PCM at `rate`); the future completes when its last
        frame has been sent."""
        if rate != RATE:  # one piece, so no frame joins to click
            samples = soxr.resample(np.frombuffer(pcm, dtype="<i2"), rate, RATE, quality="HQ")
            pcm = samples.astype("<i2").tobytes()
        ulaw = pcm16_to_ulaw(pcm)
        frames = [
            ulaw[i : i + FRAME_BYTES].ljust(FRAME_BYTES, SILENCE[:1])
            for i in range(0, len(ulaw), FRAME_BYTES)
        ]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._speech.extend((frame, None) for frame in frames[:-1])
        if frames:
            self._speech.append((frames[-1], done))
        else:
            done.set_result(None)
        return done

    async def dtmf(self, digit: str) -> None:
        if digit not in DTMF_DIGITS:
            raise ValueError(f"a DTMF digit is one of {''.join(sorted(DTMF_DIGITS))}")
        await self._send_event("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    async def _stream(self) -> None:
        start = time.monotonic()
        chunk = 0
        while True:
            frame, done = self._speech.popleft() if self._speech else (SILENCE, None)
            chunk += 1
            if frame is not SILENCE:  # placed on the stream's timeline, not at the (jittery) send time
                self.spoken.append((start + (chunk - 1) * FRAME_S, frame))
            media = {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str((chunk - 1) * 20),  # ms of audio since the stream started
                "payload": base64.b64encode(frame).decode("ascii"),
            }
            try:
                await self._send_event("media", media=media)
            except ConnectionError:
                return  # the media host closed the stream
            if done is not None:
                done.set_result(None)
            await asyncio.sleep(max(0.0, start + chunk * FRAME_S - time.monotonic()))

    # -- what the media host sends ----------------------------------------------------------------
    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            now = time.monotonic()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._take(now, msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.warnings.append(StreamWarning(now, BINARY_MESSAGE, "binary frame"))
            self._changes.notify()
        self._changes.notify()

    def _take(self, now: float, text: str) -> None:
        try:
            message = decode(_OUTBOUND, text)
        except WireError as exc:
            self.warnings.append(StreamWarning(now, INVALID_MESSAGE, exc.reason))
            return
        if message.stream_sid != self.stream_sid:
            self.warnings.append(StreamWarning(now, INVALID_MESSAGE, "wrong streamSid"))
            return
        self.received.append(Message(now, json.loads(text)))
        if isinstance(message, _Media):
            start = max(now, self._playing_until)
            self._queued.append(HeardAudio(start, message.media.payload))
            self._playing_until = start + len(message.media.payload) / RATE
        elif isinstance(message, _Mark):
            self._pending.append(_PendingMark(message.mark.name, now, max(now, self._playing_until)))
            self._mark_due.set()
        else:
            self._clear(now)

    def _clear(self, now: float) -> None:
        self.clears.append(now)
        for audio in self._queued:
            if audio.start < now:
                self._played.append(HeardAudio(audio.start, audio.ulaw[: int((now - audio.start) * RATE)]))
        self._queued.clear()
        self._playing_until = now
        for mark in self._pending:
            if mark.due > now:
                mark.due, mark.played = now, False
        self._mark_due.set()

    async def _echo_marks(self) -> None:
        """The one sender of mark echoes, so they leave in order whether played or cleared."""
        while True:
            self._mark_due.clear()
            while self._pending and self._pending[0].due <= time.monotonic():
                mark = self._pending.popleft()
                await self._send_event("mark", mark={"name": mark.name})
                self.marks.append(EchoedMark(mark.name, mark.sent_at, time.monotonic(), mark.played))
                self._changes.notify()
            delay = self._pending[0].due - time.monotonic() if self._pending else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._mark_due.wait()

    # -- for tests --------------------------------------------------------------------------------
    def heard(self) -> list[HeardAudio]:
        """What the caller heard (or is about to): back to back in real time, cut at each clear."""
        return self._played + self._queued

    def last_heard(self) -> HeardAudio | None:
        heard = self.heard()
        return heard[-1] if heard else None

    def assistant_quiet_for(self) -> float:
        """Seconds since the caller last heard audio from the media host (inf if never)."""
        last = self.last_heard()
        return float("inf") if last is None else time.monotonic() - last.end

    def of_event(self, event: str) -> list[Message]:
        return [m for m in self.received if m.event == event]

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Until `predicate()` holds, checked whenever a message arrives or a mark is echoed."""
        await self._changes.wait_until(predicate, timeout)

    def write_recording(self, path: Path, *, since: float | None = None) -> float:
        """A stereo WAV at 8 kHz, caller left and media host right, each as it was heard; returns its
        length in seconds."""
        return write_stereo(path, self.spoken, [(a.start, a.ulaw) for a in self.heard()], since=since)


def write_stereo(
    path: Path,
    left: Sequence[tuple[float, bytes]],
    right: Sequence[tuple[float, bytes]],
    *,
    since: float | None = None,
) -> float:
    """μ-law pieces placed by their monotonic start time, from `since` (default: the first piece)."""
    pieces = [
        (channel, at, np.frombuffer(ulaw_to_pcm16(ulaw), dtype="<i2"))
        for channel, side in enumerate((left, right))
        for at, ulaw in side
    ]
    origin = since if since is not None else min((at for _, at, _ in pieces), default=0.0)
    end = max((at + samples.size / RATE for _, at, samples in pieces), default=origin)
    stereo = np.zeros((max(0, round((end - origin) * RATE)), 2), dtype="<i2")
    for channel, at, samples in pieces:
        offset = round((at - origin) * RATE)
        part = samples[max(0, -offset) : max(0, len(stereo) - offset)]
        stereo[max(0, offset) : max(0, offset) + part.size, channel] = part
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(stereo.tobytes())
    return len(stereo) / RATE
