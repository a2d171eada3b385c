"""The engine's aiohttp application: the GA Realtime WebSocket, one session per socket, at every path
the media host and the official `openai` SDK use:

- `/openai/v1/realtime?model=<deployment>`: Azure OpenAI's GA endpoint. The media host connects here
  (`AZURE_OPENAI_ENDPOINT=http://127.0.0.1:<port>`), and so does `AsyncOpenAI(websocket_base_url=
  "ws://127.0.0.1:<port>/openai/v1")` as in Azure's GA quickstart;
- `/openai/realtime?api-version=<v>&deployment=<deployment>`: the URL `AsyncAzureOpenAI` builds
  (its `api-version` is a required client setting, and it names the deployment `deployment`). That
  client always asks for `wss://` unless it is given `websocket_base_url="ws://127.0.0.1:<port>/openai"`;
- `/v1/realtime?model=<model>`: api.openai.com's (`AsyncOpenAI(base_url="http://127.0.0.1:<port>/v1")`,
  or the media host with `OPENAI_BASE_URL=ws://127.0.0.1:<port>/v1`).

Every path speaks the GA protocol and takes the model as `model` or `deployment`; an `api-version` is
accepted on all of them (the Azure client sends one wherever it is pointed). Any credential is accepted
unless `EngineConfig.api_key` is set; then `api-key: <key>` (or the same key as a bearer token or
`api-key` query parameter, as Azure accepts) is required.
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
AZURE_GA_PATH = "/openai/v1/realtime"
AZURE_DEPLOYMENT_PATH = "/openai/realtime"  # what AsyncAzureOpenAI(...).realtime.connect() builds
OPENAI_PATH = "/v1/realtime"
REALTIME_PATHS = (AZURE_GA_PATH, AZURE_DEPLOYMENT_PATH, OPENAI_PATH)


def create_app(config: EngineConfig | None = None) -> web.Application:
    config = config or EngineConfig()
    app = web.Application()
    for path in REALTIME_PATHS:
        app.router.add_get(path, realtime_socket)
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
    if request.path == AZURE_DEPLOYMENT_PATH and not request.query.get("api-version"):
        raise web.HTTPBadRequest(text="the api-version query parameter is required on /openai/realtime")
    model = request.query.get("model") or request.query.get("deployment")
    if not model:
        raise web.HTTPBadRequest(
            text="the model (or deployment) query parameter, the model or deployment name, is required"
        )
    if engine.config.api_key is not None and not _authorised(request, engine.config.api_key):
        raise web.HTTPUnauthorized(text="missing or wrong api-key")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise web.HTTPUpgradeRequired(text="this endpoint speaks WebSocket only")
    await ws.prepare(request)
    session = EngineSession(ws, engine, model, request.path)
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
        log.info("offline realtime engine at %s%s", self.url, AZURE_GA_PATH)
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
