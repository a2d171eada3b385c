"""The media host's aiohttp application: the doors of the configured providers, probes, draining."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
from collections.abc import AsyncIterator, Sequence

import aiohttp
from aiohttp import web
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential

from common import log_safety
from common.acs_jwt import AcsJwtVerifier
from common.telemetry import Telemetry
from common.twiml import STREAM_PATH

from .acs_door import media_socket
from .call_control import CallControl
from .host import HOST, MediaHost
from .model_link import BearerTokenCache, ModelConnector
from .settings import MediaSettings
from .tools import Tool, build_tools
from .twilio_control import TwilioControl
from .twilio_door import twilio_socket

log = logging.getLogger(__name__)


def create_app(
    settings: MediaSettings,
    *,
    credential: AsyncTokenCredential | None = None,
    tools: list[Tool] | None = None,
) -> web.Application:
    """`credential` defaults to DefaultAzureCredential (honours AZURE_CLIENT_ID) when Entra ID is needed."""
    log_safety.install()
    app = web.Application()
    if settings.acs is not None:
        app.router.add_get("/ws/media", media_socket)
    if settings.twilio is not None:
        app.router.add_get(STREAM_PATH, twilio_socket)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

    async def clients(app: web.Application) -> AsyncIterator[None]:
        call_tools = build_tools(settings, tools)  # first: a bad MEDIA_EXTRA_TOOLS leaves nothing open
        acs = settings.acs
        needs_entra = not settings.model.api_key or (acs is not None and not acs.connection_string)
        owned = None
        cred = credential
        if cred is None and needs_entra:
            cred = owned = DefaultAzureCredential()
        tokens = BearerTokenCache(cred) if cred is not None and not settings.model.api_key else None
        if tokens is not None:
            tokens.start()
        # Every realtime socket holds its pooled connection for the whole call, so aiohttp's default
        # pool (100) would be a hidden cap on calls: MAX_CONCURRENT_CALLS is the only limit.
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10),
        )
        telemetry = Telemetry.from_settings(settings.telemetry, plane="media")
        telemetry.attach_logs("media_host")
        host = MediaHost(
            settings=settings,
            connector=ModelConnector(settings.model, http, tokens, telemetry),
            tools=call_tools,
            telemetry=telemetry,
        )
        if acs is not None:
            host.verifier = AcsJwtVerifier(
                audience=acs.resource_id, issuer=acs.jwt_issuer, openid_config_url=acs.openid_config_url
            )
            host.control = CallControl.from_settings(acs, cred, telemetry)
        if settings.twilio is not None:
            host.twilio = TwilioControl(settings.twilio, http, telemetry)
        app[HOST] = host
        yield
        await close_calls(host, "shutdown")
        if host.control is not None:
            await host.control.close()
        if host.verifier is not None:
            await host.verifier.close()
        if tokens is not None:
            await tokens.close()
        await http.close()
        if owned is not None:
            await owned.close()
        await asyncio.to_thread(telemetry.close)  # flushes, bounded; off the loop: it joins a thread

    app.cleanup_ctx.append(clients)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readyz(request: web.Request) -> web.Response:
    host = request.app[HOST]
    # Each worker answers for itself: a replica takes workers x max_concurrent_calls, and all of its
    # workers drain together (the manager forwards SIGTERM to each).
    body = {
        "ready": not host.draining,
        "active_calls": host.active_calls,
        "max_concurrent_calls": host.settings.max_concurrent_calls,
        "worker": os.getpid(),
        "workers": host.settings.workers,
    }
    return web.json_response(body, status=503 if host.draining else 200)


LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s %(message)s"  # the pid: which worker
LISTEN_BACKLOG = 1024
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SOCKETS_PER_CALL = 2  # the provider's media socket and the model's


def raise_open_file_limit() -> int:
    """Lift the soft limit on open files to the hard one (often 1024 against 1048576): at two sockets
    per call, 1024 would be a hidden cap of ~500 calls. Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def serve(
    app: web.Application,
    *,
    name: str,
    host: str = "",
    port: int = 0,
    sockets: Sequence[socket.socket] = (),
) -> None:
    """Serve `app` on host:port, or on the listening `sockets` a worker is given (media_host.workers),
    until SIGTERM (or SIGINT), then drain: the command of every image that holds calls."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:  # first: a stop signal while the app starts drains it once it listens
        loop.add_signal_handler(sig, stop.set)
    files = raise_open_file_limit()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # A deploy or a failover sends many calls at once: a longer accept queue than the default 128
    # (asyncio listens again on a socket it is given, so the manager's backlog needs repeating).
    sites: list[web.BaseSite] = [web.SockSite(runner, sock, backlog=LISTEN_BACKLOG) for sock in sockets] or [
        web.TCPSite(runner, host, port, backlog=LISTEN_BACKLOG)
    ]
    for site in sites:
        await site.start()
    routes = sorted({route.resource.canonical for route in app.router.routes() if route.resource})
    log.info("%s listening on %s (%s)", name, ", ".join(site.name for site in sites), ", ".join(routes))
    settings = app[HOST].settings if HOST in app else None
    if settings is not None and files < SOCKETS_PER_CALL * settings.max_concurrent_calls + 64:
        log.warning(
            "the open-file limit (%d) allows fewer than MAX_CONCURRENT_CALLS=%d calls; raise `ulimit -n`",
            files,
            settings.max_concurrent_calls,
        )
    await stop.wait()
    log.info("stop signal received")
    await drain(app)  # whatever else the app serves (control routes) keeps answering meanwhile
    await runner.cleanup()
    log.info("%s stopped", name)


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
