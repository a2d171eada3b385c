"""`GET /ws/twilio`: where Twilio dials the `<Connect><Stream>` our voice webhook answered with.

Twilio puts no token on a Media Streams socket; it signs the upgrade (`X-Twilio-Signature` over the
stream URL as it dialled it, which is configuration, never a header a proxy could rewrite). That is
checked before the upgrade (403). Then, within a bounded wait, the stream's `start` must carry the
per-call token our webhook minted for this CallSid: anything else is closed as a policy violation,
with the reason recorded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

import aiohttp
from aiohttp import web

from common.telemetry import CallIds, checked_id
from common.twilio_auth import CallTokenRejected, valid_twilio_signature, verify_call_token

from . import twilio_media as tm
from .host import HOST, Door, door
from .twilio_leg import TwilioLeg

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 5.0  # Twilio sends `connected` and `start` at once


class NoStart(Exception):
    """The stream did not start as Twilio starts one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@door
async def twilio_socket(request: web.Request) -> web.StreamResponse:
    host = request.app[HOST]
    twilio, control = host.settings.twilio, host.twilio
    assert twilio is not None and control is not None  # the route exists only with Twilio
    door = Door(host, request)
    signature = request.headers.get("X-Twilio-Signature", "")
    if not signature or not valid_twilio_signature(twilio.auth_token, twilio.stream_url, {}, signature):
        log.warning("refused Twilio media socket: %s signature", "bad" if signature else "no")
        raise door.refuse(403, "twilio_signature", "X-Twilio-Signature is missing or does not match")
    door.not_draining()
    door.has_room()
    ws = await door.accept()
    try:
        start = await _start(ws)
        verify_call_token(twilio.auth_token, start.custom_parameters.get("callToken", ""), start.call_sid,
                          now=time.time())  # fmt: skip
    except (NoStart, CallTokenRejected) as exc:
        reason = f"twilio_{exc.reason}" if isinstance(exc, NoStart) else f"call_token_{exc.reason}"
        log.warning("closed Twilio media socket: %s", reason)
        door.refused(1008, reason)
        await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=reason.encode())
        return ws
    ids = CallIds(
        correlation_id=start.call_sid,  # Twilio's call id joins both planes' records, as ACS's does
        call_connection_id=start.stream_sid,
        caller=checked_id(start.custom_parameters.get("caller")),
    )
    await door.run_call(
        ids,
        start.custom_parameters.get("profile"),
        lambda call: TwilioLeg(
            ws=ws,
            ids=ids,
            start=start,
            settings=host.settings,
            control=control,
            handler=call,
            model_audio=twilio.model_audio,
        ),
        audio_format=twilio.model_audio,
    )
    return ws


async def _start(ws: web.WebSocketResponse[Literal[False]]) -> tm.Start:
    """`connected`, then `start`: nothing else may come first."""
    try:
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    raise NoStart("not_text")
                try:
                    message = tm.parse_inbound(msg.data)
                except tm.MalformedMessage:
                    raise NoStart("malformed_start") from None
                if isinstance(message, tm.Start):
                    if message.media_format != tm.MULAW_8K_MONO:
                        raise NoStart("unsupported_media_format")
                    return message
                if not isinstance(message, tm.Connected):
                    raise NoStart("no_start")
    except TimeoutError:
        raise NoStart("start_timeout") from None
    raise NoStart("closed_before_start")
