"""Fixtures for the offline realtime engine: a running engine and a recording Realtime client."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from emulators.realtime import EngineConfig, EngineServer
from media_host import realtime_protocol as rt
from media_host.tools import EndCall, tool_schema

from .caller import frames
from .conformance import WITH_RETRIEVE, problems
from .sdk_events import sdk_problems

# Exactly what the media host sends (its own translator builds it), so the engine is tested against it.
GA_SESSION = json.loads(
    rt.session_update(
        rt.SessionConfig(
            instructions="You are the Contoso Bistro reservation line.",
            voice="sage",
            transcription_model="whisper-1",
            vad_threshold=0.5,
            vad_silence_ms=500,
            vad_prefix_ms=300,
            tools=[tool_schema(EndCall())],
        )
    )
)["session"]


class EventLog:
    """Server events as a client received them, in order, and waits on them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()

    def record(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self._arrived.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    async def wait_for(
        self,
        kind: str,
        *,
        count: int = 1,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                matches = [e for e in self.of_type(kind) if where(e)]
                if len(matches) >= count:
                    return matches[count - 1]
                self._arrived.clear()
                await self._arrived.wait()

    async def response_done(self, count: int, timeout: float = 20.0) -> dict[str, Any]:
        response: dict[str, Any] = (await self.wait_for("response.done", count=count, timeout=timeout))[
            "response"
        ]
        return response

    def transcript_of(self, response_id: str) -> str:
        done = [
            e
            for e in self.of_type("response.output_audio_transcript.done")
            if e["response_id"] == response_id
        ]
        return str(done[-1]["transcript"]) if done else ""


class RealtimeClient(EventLog):
    """A bare Realtime API client that records every server event it receives, in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        super().__init__()
        self.ws = ws
        self._http = session
        self.raw: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.raw.append(msg.data)
                self.record(json.loads(msg.data))

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    async def update(self, *, turn_detection: Any = "default", **changes: Any) -> dict[str, Any]:
        """session.update with GA_SESSION, top-level `changes` and, if given, another turn_detection."""
        session = json.loads(json.dumps(GA_SESSION))
        session.update(changes)
        if turn_detection != "default":
            session["audio"]["input"]["turn_detection"] = turn_detection
        count = len(self.of_type("session.updated")) + 1
        await self.send({"type": "session.update", "session": session})
        return await self.wait_for("session.updated", count=count)

    async def append(self, pcm: bytes) -> None:
        """Caller audio as 20 ms appends, as fast as the socket takes them (the engine keeps audio time)."""
        for frame in frames(pcm):
            await self.ws.send_str(
                '{"type":"input_audio_buffer.append","audio":"' + base64.b64encode(frame).decode() + '"}'
            )

    def audio_of(self, response_id: str) -> bytes:
        return b"".join(
            base64.b64decode(e["delta"])
            for e in self.of_type("response.output_audio.delta")
            if e["response_id"] == response_id
        )

    async def close(self) -> None:
        await self.ws.close()
        await self._reader
        await self._http.close()


Connect = Callable[..., Awaitable[RealtimeClient]]
StartEngine = Callable[..., Awaitable[EngineServer]]


async def connect_to(
    url: str, *, model: str = "gpt-realtime", headers: dict[str, str] | None = None
) -> RealtimeClient:
    http = aiohttp.ClientSession()
    try:
        ws = await http.ws_connect(
            url.replace("http", "ws", 1) + f"/openai/v1/realtime?model={model}",
            headers=headers or {"api-key": "any"},
            max_msg_size=0,
        )
    except BaseException:
        await http.close()
        raise
    return RealtimeClient(ws, http)


@pytest.fixture
async def start_engine() -> AsyncIterator[StartEngine]:
    servers: list[EngineServer] = []

    async def start(**config: Any) -> EngineServer:
        server = EngineServer(EngineConfig(**config))
        await server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def connect(
    start_engine: StartEngine,
) -> AsyncIterator[Connect]:
    """`await connect(pace=0)`: a fresh engine with that config and a client connected to it."""
    clients: list[RealtimeClient] = []

    async def open_client(**config: Any) -> RealtimeClient:
        server = await start_engine(**config)
        client = await connect_to(server.url)
        clients.append(client)
        await client.wait_for("session.created")
        return client

    yield open_client
    for client in clients:
        await client.close()
    for client in clients:  # whatever a test did, every server event it got must be well formed
        assert problems(client.events, WITH_RETRIEVE) == []
        assert sdk_problems(client.raw) == []  # ...and exactly what the official SDK's types declare
