"""The ACS telephony leg of a call: its media socket in, neutral events out, neutral actions offered.

The leg reads ACS's media stream (`acs_media` parses it), tells the call core about the caller's
audio and keys, and counts and drops what it cannot use. It plays the model's audio back paced on
ACS's own clock (frames sent, `playback`), clears it on barge-in (`StopAudio`), and hangs up or
transfers through Call Automation (see `leg.py` for what every leg offers).
"""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web

from common.telemetry import CallIds

from .acs_media import (
    STOP_AUDIO,
    AudioData,
    AudioMetadata,
    DtmfData,
    MalformedMessage,
    UnknownKind,
    audio_frame,
    parse_inbound,
)
from .audio_paths import PCM24, LegAudio
from .call_control import CallControl
from .leg import LegHandler
from .playback import Interrupted
from .settings import MediaSettings
from .socket_leg import SocketLeg

log = logging.getLogger(__name__)


class AcsLeg(SocketLeg):
    provider = "acs"

    def __init__(
        self,
        *,
        ws: web.WebSocketResponse[Literal[False]],
        ids: CallIds,
        settings: MediaSettings,
        control: CallControl,
        handler: LegHandler,
    ) -> None:
        # ACS is asked for the model's own format (until AudioMetadata says otherwise)
        super().__init__(ws=ws, ids=ids, settings=settings, handler=handler, audio=PCM24, model_audio="pcm24")
        self._control = control

    def _on_message(self, text: bytes) -> bool:
        try:
            message = parse_inbound(text)
        except MalformedMessage as exc:
            self._count_malformed(exc.reason)
            return False
        if isinstance(message, AudioData):
            self._handler.on_caller_audio(message.pcm, self.audio)
        elif isinstance(message, AudioMetadata):
            if message.sample_rate != self.audio.rate:
                self._set_audio(LegAudio("pcm16", message.sample_rate))
            log.info("audio format: PCM %d Hz", message.sample_rate, extra=self.ids.dims())
        elif isinstance(message, DtmfData):
            self._handler.on_dtmf(message.tone)
        elif isinstance(message, UnknownKind):
            self._count_unknown(message.kind)
        return False

    # -- actions ------------------------------------------------------------------------------
    async def clear(self) -> Interrupted | None:
        """Barge-in: nothing queued is sent after this, and ACS drops what it holds. Returns what the
        caller had heard of the item that was playing, if any."""
        interrupted = self.playback.interrupt()  # synchronous: nothing queued can be sent after this
        await self._send(STOP_AUDIO)
        return interrupted

    async def _hang_up(self) -> None:
        await self._control.hang_up(self.ids)  # through Call Automation

    async def transfer(self, target: str, *, operation_context: str) -> None:
        await self._control.transfer(self.ids, target, operation_context=operation_context)

    async def _send_frame(self, frame: bytes, item_id: str, item_sent: int) -> None:
        await self._send(audio_frame(frame))  # ACS's clock is the frames sent: no progress to ask for
