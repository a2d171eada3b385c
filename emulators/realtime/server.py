"""The engine's aiohttp application: `GET /openai/v1/realtime?model=<name>`, one session per socket.

The media host connects to it exactly as to Azure OpenAI (`AZURE_OPENAI_ENDPOINT=http://127.0.0.1:<port>`).
Any credential is accepted unless `EngineConfig.api_key` is set; then `api-key: <key>` (or the same
key as a bearer token or `api-key` query parameter, as Azure accepts) is required.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from emulators.serving import serve

from .asr import DomainModel, shared_model
from .session import EngineSession, SessionStats
from .speech import voice

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # one append may carry 15 MiB of base64 audio


@dataclass(frozen=True)
class EngineConfig:
    api_key: str | None = None  # None: any credential (or none) is accepted
    pace: float = 1.0  # assistant audio is sent at this multiple of real time; 0 = as fast as it is made
    lead_ms: int = 300  # ...after this much has been sent at once
    chunk_ms: int = 100  # audio per response.output_audio.delta
    fwdflat: bool = False  # pocketsphinx's second pass: ~50-80 ms more per turn end, no gain measured here


@dataclass
class Engine:
    """Process-wide state of one engine app."""

    config: EngineConfig
    domain_model: DomainModel
    sessions: set[EngineSession] = field(default_factory=set)
    finished: deque[SessionStats] = field(default_factory=lambda: deque(maxlen=200))


ENGINE = web.AppKey("realtime_engine", Engine)


def create_app(config: EngineConfig | None = None) -> web.Application:
    config = config or EngineConfig()
    app = web.Application()
    app.router.add_get("/openai/v1/realtime", realtime_socket)
    app.router.add_get("/healthz", healthz)

    async def engine(app: web.Application) -> AsyncIterator[None]:
        # paid once per process, before the first call: the domain LM files and libespeak-ng
        model = await asyncio.to_thread(shared_model)
        await asyncio.to_thread(voice)
        app[ENGINE] = Engine(config, model)
        yield

    async def close_sessions(app: web.Application) -> None:
        if ENGINE in app:
            for session in list(app[ENGINE].sessions):
                await session.close(aiohttp.WSCloseCode.GOING_AWAY, "engine shutting down")

    app.cleanup_ctx.append(engine)
    app.on_shutdown.append(close_sessions)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "sessions": len(request.app[ENGINE].sessions)})


async def realtime_socket(request: web.Request) -> web.StreamResponse:
    engine = request.app[ENGINE]
    if "api-version" in request.query:  # as Azure: the GA /openai/v1 path takes none
        raise web.HTTPBadRequest(text="api-version is not used by the GA endpoint /openai/v1/realtime")
    model = request.query.get("model")
    if not model:
        raise web.HTTPBadRequest(text="the model query parameter (the deployment name) is required")
    if engine.config.api_key is not None and not _authorised(request, engine.config.api_key):
        raise web.HTTPUnauthorized(text="missing or wrong api-key")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise web.HTTPUpgradeRequired(text="this endpoint speaks WebSocket only")
    await ws.prepare(request)
    session = EngineSession(ws, engine, model)
    engine.sessions.add(session)
    try:
        await session.run()
    finally:
        engine.sessions.discard(session)
        engine.finished.append(session.stats)
    return ws


def _authorised(request: web.Request, key: str) -> bool:
    offered = request.headers.get("api-key") or request.query.get("api-key") or ""
    auth = request.headers.get("Authorization", "")
    if not offered and auth.startswith("Bearer "):
        offered = auth.removeprefix("Bearer ")
    return hmac.compare_digest(offered.encode(), key.encode())


class EngineServer:
    """The engine on a TCP port, for tests and the local runner: `async with EngineServer() as s: s.url`."""

    def __init__(self, config: EngineConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = create_app(config)
        self._host, self._port = host, port
        self._runner: web.AppRunner | None = None
        self.url = ""

    @property
    def engine(self) -> Engine:
        return self.app[ENGINE]

    async def start(self) -> str:
        self._runner, self.url = await serve(self.app, self._host, self._port)
        log.info("offline realtime engine at %s/openai/v1/realtime", self.url)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> EngineServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
