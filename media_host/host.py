"""The media host's process-wide state, and what every door does the same way.

A door (`acs_door`, `twilio_door`) authenticates its provider's connection in its own way; then
admission (draining, capacity), the socket, the call's instructions and the call's bookkeeping are
the same for every provider, and live here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from common.acs_jwt import AcsJwtVerifier
from common.profiles import Profile
from common.telemetry import REPLICA, CallIds, Operation, Telemetry, current_operation
from common.voices import VOICES

from .call_control import CallControl
from .call_events import AuditTrail, CallObserver
from .call_session import CallSession
from .leg import Leg
from .model_link import ModelConnector
from .realtime_protocol import AudioFormat
from .settings import MediaSettings
from .tools import Tool
from .twilio_control import TwilioControl

log = logging.getLogger(__name__)


@dataclass
class MediaHost:
    """Process-wide state: one of each client, and the calls in progress."""

    settings: MediaSettings
    connector: ModelConnector
    tools: list[Tool]
    telemetry: Telemetry
    verifier: AcsJwtVerifier | None = None  # ACS calls only
    control: CallControl | None = None
    twilio: TwilioControl | None = None  # Twilio calls only
    observers: list[CallObserver] = field(
        default_factory=list
    )  # told about every call, besides the audit trail
    calls: set[CallSession] = field(default_factory=set)
    reserved: int = 0  # accepted but not yet upgraded, so the cap holds under a burst
    draining: bool = False
    refused: Counter[str] = field(default_factory=Counter)
    no_calls: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.no_calls.set()

    @property
    def active_calls(self) -> int:
        return len(self.calls) + self.reserved


HOST = web.AppKey("media_host", MediaHost)


def door(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A door's handler runs as one telemetry operation (`GET /ws/...`): the call's records, in every
    task it starts, are the children of its request record."""

    @functools.wraps(handler)
    async def handle(request: web.Request) -> web.StreamResponse:
        with request.app[HOST].telemetry.operation(f"GET {request.path}"):
            return await handler(request)

    return handle


@dataclass
class Door:
    """One connection at a door, from its upgrade request to the end of its call."""

    host: MediaHost
    request: web.Request
    operation: Operation = field(init=False)

    def __post_init__(self) -> None:
        operation = current_operation()
        assert operation is not None, "a door's handler is wrapped in @door"
        self.operation = operation

    def refuse(self, status: int, reason: str, message: str) -> web.HTTPException:
        """Before the upgrade. Recorded without the request's headers: before they are verified they
        are anyone's words, and must not put entries (or numbers) into a real call's audit trail."""
        self.refused(status, reason)
        error = {401: web.HTTPUnauthorized, 403: web.HTTPForbidden}.get(status, web.HTTPServiceUnavailable)
        return error(text=message)

    def refused(self, status: int, reason: str) -> None:
        host = self.host
        host.refused[reason] += 1
        host.telemetry.event("MediaRefused", reason=reason, status=status)
        host.telemetry.request(self.operation, url=self.request.path, status=status)

    def not_draining(self) -> None:
        """A draining host takes no call: 503 at once, so the provider tries another."""
        if self.host.draining:
            raise self.refuse(503, "draining", "media host is draining; retry another replica")

    def has_room(self) -> None:
        """Once the caller is known to be the provider: at capacity, 503."""
        host = self.host
        if host.active_calls >= host.settings.max_concurrent_calls:
            log.warning("refused media socket: %d calls in progress", host.active_calls)
            raise self.refuse(503, "capacity", f"at capacity ({host.settings.max_concurrent_calls} calls)")

    async def accept(self) -> web.WebSocketResponse[Literal[False]]:
        # aiohttp closes the socket on a message over its limit: allow headroom and drop them ourselves.
        # Text stays bytes: msgspec decodes it directly, and invalid UTF-8 is one dropped message, not a
        # transport error that would end the call.
        ws: web.WebSocketResponse[Literal[False]] = web.WebSocketResponse(
            max_msg_size=max(4 * self.host.settings.max_frame_bytes, 1 << 20), timeout=2.0, decode_text=False
        )
        self.host.reserved += 1
        try:
            await ws.prepare(self.request)
        finally:
            self.host.reserved -= 1
        return ws

    def profile(self, name: str | None, ids: CallIds) -> tuple[Profile, str | None]:
        """The named profile, or the default instructions (and no name) for none or an unknown name:
        the call goes on rather than failing on a deployment mismatch."""
        settings = self.host.settings
        if name is not None and name in settings.profiles:
            return settings.profiles[name], name
        if name is not None:
            log.warning(
                "unknown instructions profile %r; using the default instructions", name[:40], extra=ids.dims()
            )
        return Profile(settings.model.instructions), None

    def voice(self, voice: str | None, ids: CallIds) -> str:
        """The voice asked for, or AOAI_VOICE for none or an unknown one (as for a profile)."""
        default = self.host.settings.model.voice
        if voice is None or voice in VOICES:
            return voice or default
        log.warning("unknown voice %r; using the default voice %s", voice[:40], default, extra=ids.dims())
        return default

    async def run_call(
        self,
        ids: CallIds,
        profile: str | None,
        leg: Callable[[CallSession], Leg],
        *,
        voice: str | None = None,
        audio_format: AudioFormat = "pcm24",
    ) -> None:
        host = self.host
        chosen, profile = self.profile(profile, ids)
        session = CallSession(
            leg=leg,
            ids=ids,
            profile_name=profile,
            profile=chosen,
            voice=self.voice(voice, ids),
            settings=host.settings,
            connector=host.connector,
            tools=host.tools,
            telemetry=host.telemetry,
            observers=[AuditTrail(host.telemetry), *host.observers],
            audio_format=audio_format,
        )
        host.calls.add(session)
        host.no_calls.clear()
        host.telemetry.metric("active_calls", len(host.calls), replica=REPLICA)
        try:
            await session.run()
        finally:
            host.calls.discard(session)
            if not host.calls:
                host.no_calls.set()
            host.telemetry.metric("active_calls", len(host.calls), replica=REPLICA)
            host.telemetry.request(self.operation, url=self.request.path, status=101, ids=ids)
