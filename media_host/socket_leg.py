"""What every WebSocket telephony leg does the same way, whatever its provider's wire format.

It reads the provider's stream until it closes, counts and drops what cannot be used (each reason
logged once per call), ends a stream that has gone silent (the provider sends a frame every 20 ms
even in silence, so silence means a half-open socket), and plays the model's audio back through
`Playback`. A subclass parses its provider's messages and offers the provider's actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Literal

import aiohttp
from aiohttp import web

from common.errors import ProductError
from common.telemetry import CallIds

from .audio_paths import LegAudio, to_leg
from .leg import LegHandler, count_bounded
from .playback import Playback
from .realtime_protocol import AudioFormat
from .settings import MediaSettings

log = logging.getLogger(__name__)

MAX_QUEUED_ASSISTANT_SECONDS = 120.0  # the model generates faster than real time; bound what waits (5.8 MB)
_TRANSPORT_ERRORS: dict[int, str] = {  # close code of a socket the transport gave up on -> end reason
    aiohttp.WSCloseCode.MESSAGE_TOO_BIG: "message_too_big",
    aiohttp.WSCloseCode.PROTOCOL_ERROR: "protocol_error",
}


class SocketLeg:
    provider = ""  # "acs", "twilio": prefixes end reasons and names log lines

    def __init__(
        self,
        *,
        ws: web.WebSocketResponse[Literal[False]],
        ids: CallIds,
        settings: MediaSettings,
        handler: LegHandler,
        audio: LegAudio,
        model_audio: AudioFormat,
    ) -> None:
        self.ws = ws
        self.ids = ids
        self._settings = settings
        self._handler = handler
        self._model_audio = model_audio
        self.audio = audio
        self.malformed: Counter[str] = Counter()  # messages dropped, by reason
        self.unknown_kinds: Counter[str] = Counter()
        self._heard_at = time.monotonic()
        self._idle = False
        self.playback = Playback(
            self._send_frame,
            leg=audio,
            to_leg=to_leg(model_audio, audio, settings.soxr_quality),
            lead_ms=settings.playback_lead_ms,
            chunk_ms=settings.playback_chunk_ms,
            max_queued_seconds=MAX_QUEUED_ASSISTANT_SECONDS,
            on_item_started=handler.on_audio_started,
        )

    def _set_audio(self, audio: LegAudio) -> None:
        self.audio = audio
        self.playback.set_format(audio, to_leg(self._model_audio, audio, self._settings.soxr_quality))

    # -- events in ----------------------------------------------------------------------------
    async def run(self) -> str | None:
        """Until the stream closes (None), or it failed: then the reason to hang the call up."""
        watch = asyncio.create_task(
            self._watch(), name=f"watch-{self.provider}:{self.ids.call_connection_id}"
        )
        try:
            async for msg in self.ws:
                self._heard_at = time.monotonic()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    if len(msg.data) > self._settings.max_frame_bytes:
                        self._count_malformed("oversized")
                    elif self._on_message(msg.data):
                        return None  # the provider said the stream is over
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self._count_malformed("binary_frame")
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    # the transport itself gave up (e.g. a message over its size limit) and has closed the
                    # socket, so the call cannot go on: hang it up rather than leave the caller in silence
                    error = _TRANSPORT_ERRORS.get(getattr(msg.data, "code", 0), "transport_error")
                    reason = f"{self.provider}_{error}"
                    self._count_malformed(reason)
                    log.warning(
                        "%s media socket failed: %s; hanging up", self.provider, reason, extra=self.ids.dims()
                    )
                    return reason
            return "media_idle" if self._idle else None
        finally:
            watch.cancel()  # not awaited: the host may cancel this handler, and the reason must get out

    def _on_message(self, text: bytes) -> bool:
        """Parse and act on one text message; True when it ends the stream."""
        raise NotImplementedError

    async def _watch(self) -> None:
        """A socket quiet for MEDIA_IDLE_SECONDS is half-open (no FIN will come): end the stream rather
        than hold the call, and its model session, until MAX_CALL_SECONDS. A timer per call, not a
        timeout per frame: frames are the hot path."""
        idle = self._settings.media_idle_seconds
        while (quiet := time.monotonic() - self._heard_at) < idle:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(idle - quiet)
        log.warning("no media from %s for %.1f s; hanging up", self.provider, quiet, extra=self.ids.dims())
        self._idle = True
        await self.ws.close()  # ends the read loop in `run`, which reports why

    def _count_malformed(self, reason: str) -> None:
        if not self.malformed[reason]:  # log once per reason, count always
            log.warning("dropping malformed %s message: %s", self.provider, reason, extra=self.ids.dims())
        self.malformed[reason] += 1

    def _count_unknown(self, kind: str) -> None:
        if not self.unknown_kinds:  # once per call; the kinds and their counts are in the end record
            log.info(
                "ignoring %s message kind %r (and any other unknown kind)",
                self.provider,
                kind,
                extra=self.ids.dims(),
            )
        count_bounded(self.unknown_kinds, kind)

    # -- actions ------------------------------------------------------------------------------
    def play(self, response_id: str, item_id: str, audio: bytes) -> None:
        self.playback.push(response_id, item_id, audio)

    def finish_item(self, response_id: str, item_id: str) -> None:
        self.playback.finish_item(response_id, item_id)

    @property
    def playing(self) -> bool:
        return self.playback.playing

    async def wait_played(self) -> None:
        await self.playback.wait_played()

    async def hang_up(self) -> None:
        """For everyone, through the provider's API (once more after a transient failure); a call
        that had already ended is no failure."""
        for attempt in (1, 2):
            try:
                await self._hang_up()
                return
            except ProductError as exc:
                log.error("hang-up failed (attempt %d): %s", attempt, exc, extra=self.ids.dims())
                if not exc.transient:
                    return
                await asyncio.sleep(1.0)

    async def _hang_up(self) -> None:
        raise NotImplementedError

    async def close(self, *, going_away: str | None = None) -> None:
        if going_away is None:
            await self.ws.close()
        else:
            await self.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=going_away.encode())

    @property
    def closed(self) -> bool:
        return self.ws.closed

    async def _send_frame(self, frame: bytes, item_id: str, item_sent: int) -> None:
        """One frame of the leg's audio, and how much of `item_id` has now gone out."""
        raise NotImplementedError

    async def _send(self, text: str) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(text)
