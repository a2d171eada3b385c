"""The Twilio telephony leg of a call: a Media Streams socket in, neutral events out.

Twilio sends the caller's μ-law 8 kHz audio every 20 ms, which goes to the model as it is when the
model takes `audio/pcmu`. The model's audio goes back as 20 ms `media` frames paced like ACS's, each
followed by a `mark`: Twilio echoes a mark once the audio before it has PLAYED, so the leg knows what
the caller really heard (ACS's clock is frames sent; Twilio's is mark echoes). On barge-in a `clear`
drops what Twilio holds, and Twilio then echoes every outstanding mark at once for audio never
played: marks carry a generation, and echoes of an older generation are ignored. The truncate point
is what the echoes confirmed, never past what was sent (twilio-openai.md §3.3, §5.5).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Literal

from aiohttp import web

from common.telemetry import CallIds

from . import twilio_media as tm
from .audio_paths import ULAW8
from .leg import LegHandler
from .playback import Interrupted
from .realtime_protocol import AudioFormat
from .settings import MediaSettings
from .socket_leg import SocketLeg
from .twilio_control import TwilioControl

log = logging.getLogger(__name__)

MAX_PENDING_MARKS = 3000  # a minute of frames


class TwilioLeg(SocketLeg):
    provider = "twilio"

    def __init__(
        self,
        *,
        ws: web.WebSocketResponse[Literal[False]],
        ids: CallIds,
        start: tm.Start,
        settings: MediaSettings,
        control: TwilioControl,
        handler: LegHandler,
        model_audio: AudioFormat,
    ) -> None:
        super().__init__(
            ws=ws, ids=ids, settings=settings, handler=handler, audio=ULAW8, model_audio=model_audio
        )
        self._control = control
        self._stream_sid = start.stream_sid
        self._call_sid = start.call_sid
        self._generation = 0  # bumped by every clear: older marks' echoes say nothing of what was heard
        # (mark name, item id, bytes of the item sent with it); bounded, should Twilio never echo
        self._pending: deque[tuple[str, str, int]] = deque(maxlen=MAX_PENDING_MARKS)
        self._marks = 0
        self.heard: tuple[str | None, int] = (None, 0)  # the last item Twilio confirmed played, and how much
        self.stale_marks = 0

    def _on_message(self, text: bytes) -> bool:
        try:
            message = tm.parse_inbound(text)
        except tm.MalformedMessage as exc:
            self._count_malformed(exc.reason)
            return False
        if isinstance(message, tm.Media):
            self._handler.on_caller_audio(message.payload, self.audio)
        elif isinstance(message, tm.Mark):
            self._on_mark(message.name)
        elif isinstance(message, tm.Dtmf):
            self._handler.on_dtmf(message.digit)
        elif isinstance(message, tm.Stop):
            return True
        elif isinstance(message, tm.Unknown):
            self._count_unknown(message.event)
        elif isinstance(message, tm.Connected | tm.Start):
            self._count_unknown(f"repeated_{type(message).__name__.lower()}")  # only once, at the door
        return False

    def _on_mark(self, name: str) -> None:
        generation, _, _ = name.partition(".")
        if generation != str(self._generation):
            self.stale_marks += 1  # echoed by a clear: that audio was never played
            return
        while self._pending:  # marks come back in order; one echo confirms every earlier one too
            pending, item_id, sent = self._pending.popleft()
            self.heard = (item_id, sent)
            if pending == name:
                return
        self.stale_marks += 1  # not one we are waiting for (a late echo after a generation wrapped)

    # -- actions ------------------------------------------------------------------------------
    async def clear(self) -> Interrupted | None:
        """Barge-in: nothing queued is sent after this, and Twilio drops what it holds. What the
        caller had heard of the item that was playing, as Twilio's mark echoes confirmed it."""
        interrupted = self.playback.interrupt()  # synchronous: nothing queued can be sent after this
        self._generation += 1
        self._pending.clear()
        await self._send(tm.clear(self._stream_sid))
        if interrupted is None:
            return None
        item_id, heard = self.heard
        heard_bytes = heard if item_id == interrupted.item_id else 0
        heard_ms = int(heard_bytes / ULAW8.bytes_per_ms)
        return Interrupted(
            interrupted.response_id, interrupted.item_id, min(heard_ms, interrupted.audio_end_ms)
        )

    async def _hang_up(self) -> None:
        await self._control.hang_up(self.ids, self._call_sid)  # through Twilio's REST API

    async def transfer(self, target: str, *, operation_context: str) -> None:
        await self._control.transfer(self.ids, self._call_sid, target)

    async def _send_frame(self, frame: bytes, item_id: str, item_sent: int) -> None:
        self._marks += 1
        name = f"{self._generation}.{self._marks}"
        self._pending.append((name, item_id, item_sent))
        await self._send(tm.media(self._stream_sid, frame))
        await self._send(tm.mark(self._stream_sid, name))
