"""The media host's aiohttp application: the `/ws/media` door, health probes, and draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential

from common import log_safety
from common.acs_jwt import AcsJwtVerifier, JwtRejected
from common.telemetry import ROLE_INSTANCE, CallIds, Telemetry

from .call_control import CallControl
from .call_session import CallSession
from .model_link import BearerTokenCache, ModelConnector
from .settings import MediaSettings
from .tools import Tool, build_tools

log = logging.getLogger(__name__)


@dataclass
class MediaHost:
    """Process-wide state: one of each client, and the calls in progress."""

    settings: MediaSettings
    verifier: AcsJwtVerifier
    connector: ModelConnector
    control: CallControl
    tools: list[Tool]
    telemetry: Telemetry
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


def create_app(
    settings: MediaSettings,
    *,
    credential: AsyncTokenCredential | None = None,
    tools: list[Tool] | None = None,
) -> web.Application:
    """`credential` defaults to DefaultAzureCredential (honours AZURE_CLIENT_ID) when Entra ID is needed."""
    log_safety.install()
    app = web.Application()
    app.router.add_get("/ws/media", media_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def clients(app: web.Application) -> AsyncIterator[None]:
        needs_entra = not settings.model.api_key or not settings.acs.connection_string
        owned = None
        cred = credential
        if cred is None and needs_entra:
            cred = owned = DefaultAzureCredential()
        tokens = BearerTokenCache(cred) if cred is not None and not settings.model.api_key else None
        if tokens is not None:
            tokens.start()
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10))
        telemetry = Telemetry.from_settings(settings.telemetry, plane="media")
        telemetry.attach_logs("media_host")
        host = MediaHost(
            settings=settings,
            verifier=AcsJwtVerifier(
                audience=settings.acs.resource_id,
                issuer=settings.acs.jwt_issuer,
                openid_config_url=settings.acs.openid_config_url,
            ),
            connector=ModelConnector(settings.model, http, tokens, telemetry),
            control=CallControl.from_settings(settings.acs, cred, telemetry),
            tools=build_tools(settings, tools),
            telemetry=telemetry,
        )
        app[HOST] = host
        yield
        await close_calls(host, "shutdown")
        await host.control.close()
        await host.verifier.close()
        if tokens is not None:
            await tokens.close()
        await http.close()
        if owned is not None:
            await owned.close()
        await asyncio.to_thread(telemetry.close)  # flushes, bounded; off the loop: it joins a thread

    app.cleanup_ctx.append(clients)
    return app


async def media_socket(request: web.Request) -> web.StreamResponse:
    host = request.app[HOST]
    started = time.monotonic()
    ids = CallIds(
        correlation_id=_id(request.headers.get("x-ms-call-correlation-id")),
        call_connection_id=_id(request.headers.get("x-ms-call-connection-id")),
        caller=_id(request.query.get("caller")),  # as the control plane may show it (masked by default)
    )

    def refuse(status: int, reason: str, message: str) -> web.HTTPException:
        # Recorded without the request's headers: before the JWT is verified they are anyone's words,
        # and must not put entries (or numbers) into a real call's audit trail.
        host.refused[reason] += 1
        host.telemetry.event("MediaRefused", reason=reason, status=status)
        host.telemetry.request(
            "GET /ws/media", url=request.path, status=status, duration_s=time.monotonic() - started
        )
        error = web.HTTPUnauthorized if status == 401 else web.HTTPServiceUnavailable
        return error(text=message)

    if host.draining:
        raise refuse(503, "draining", "media host is draining; ACS will retry another replica")
    try:
        await host.verifier.verify_authorization(request.headers.get("Authorization"))
    except JwtRejected as exc:
        log.warning("refused media socket: %s", exc.for_log)
        if exc.reason == "jwks_unavailable":  # our outage, not the sender's fault: ACS may retry
            raise refuse(503, "jwks_unavailable", f"cannot verify ACS tokens right now: {exc}") from None
        host.telemetry.metric("rejected_jwts", 1, reason=exc.reason)
        raise refuse(401, f"jwt_{exc.reason}", f"ACS token rejected: {exc}") from None
    if host.active_calls >= host.settings.max_concurrent_calls:
        log.warning("refused media socket: %d calls in progress", host.active_calls)
        raise refuse(503, "capacity", f"at capacity ({host.settings.max_concurrent_calls} calls)")

    instructions = host.settings.model.instructions
    profile = request.query.get("profile")
    if profile is not None:
        if profile in host.settings.profiles:
            instructions = host.settings.profiles[profile]
        else:  # the call goes on with the default rather than failing on a deployment mismatch
            log.warning(
                "unknown instructions profile %r; using the default instructions",
                profile[:40],
                extra=ids.dims(),
            )
            profile = None
    # aiohttp closes the socket on a message over its limit: allow headroom and drop them ourselves.
    # Text stays bytes: msgspec decodes it directly, and invalid UTF-8 is one dropped message, not a
    # transport error that would end the call.
    ws: web.WebSocketResponse[Literal[False]] = web.WebSocketResponse(
        max_msg_size=max(4 * host.settings.max_frame_bytes, 1 << 20), timeout=2.0, decode_text=False
    )
    host.reserved += 1
    try:
        await ws.prepare(request)
    finally:
        host.reserved -= 1
    session = CallSession(
        ws=ws,
        ids=ids,
        profile=profile,
        instructions=instructions,
        settings=host.settings,
        connector=host.connector,
        control=host.control,
        tools=host.tools,
        telemetry=host.telemetry,
    )
    host.calls.add(session)
    host.no_calls.clear()
    host.telemetry.metric("active_calls", len(host.calls), replica=ROLE_INSTANCE)
    try:
        await session.run()
    finally:
        host.calls.discard(session)
        if not host.calls:
            host.no_calls.set()
        host.telemetry.metric("active_calls", len(host.calls), replica=ROLE_INSTANCE)
        host.telemetry.request(
            "GET /ws/media", url=request.path, status=101, duration_s=time.monotonic() - started, ids=ids
        )
    return ws


_ID = re.compile(r"[A-Za-z0-9._:+*@-]{1,128}")  # ACS's ids are GUID-like; a masked number is +81******5678


def _id(value: str | None) -> str:
    """An id from the upgrade request as the call's records may carry it, or "" if it is not one: these
    values end up in every log line and telemetry record of the call."""
    return value if value is not None and _ID.fullmatch(value) else ""


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    host = request.app[HOST]
    body = {
        "ready": not host.draining,
        "active_calls": host.active_calls,
        "max_concurrent_calls": host.settings.max_concurrent_calls,
    }
    return web.json_response(body, status=503 if host.draining else 200)


async def drain(app: web.Application) -> None:
    """SIGTERM: refuse new calls at once, let active ones finish for up to MEDIA_DRAIN_SECONDS."""
    host = app[HOST]
    host.draining = True
    log.info(
        "draining: %d calls in progress, waiting up to %.0f s", host.active_calls, host.settings.drain_seconds
    )
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(host.settings.drain_seconds):
            await host.no_calls.wait()
    await close_calls(host, "drain_timeout")


async def close_calls(host: MediaHost, reason: str) -> None:
    sessions = list(host.calls)
    if sessions:
        log.info("closing %d calls: %s", len(sessions), reason)
        await asyncio.gather(*(s.shutdown(reason) for s in sessions), return_exceptions=True)
        with contextlib.suppress(TimeoutError):  # each handler removes its call once it has closed all
            async with asyncio.timeout(5.0):
                await host.no_calls.wait()
