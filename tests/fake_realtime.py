"""A scripted stand-in for the Realtime socket of Azure OpenAI and of OpenAI.

It accepts `/openai/v1/realtime?model=...` (Azure) and `/v1/realtime?model=...` (OpenAI), checks the
credential, records every client event with its arrival time, and sends whatever server events the
test scripts, when the test says.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from emulators.serving import serve


@dataclass
class ModelSocket:
    ws: web.WebSocketResponse
    headers: dict[str, str]
    query: dict[str, str]
    path: str = ""
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for _, e in self.events if e["type"] == kind]

    def types(self) -> list[str]:
        return [e["type"] for _, e in self.events]

    def appended_audio(self) -> bytes:
        return b"".join(base64.b64decode(e["audio"]) for e in self.of_type("input_audio_buffer.append"))

    async def wait_for(
        self,
        kind: str,
        *,
        count: int = 1,
        where: Callable[[dict[str, Any]], bool] = lambda e: True,
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                matches = [e for e in self.of_type(kind) if where(e)]
                if len(matches) >= count:
                    return matches[count - 1]
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_audio_bytes(self, n: int, timeout: float = 5.0) -> bytes:
        async with asyncio.timeout(timeout):
            while len(audio := self.appended_audio()) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return audio

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(event))

    # -- scripted server events ---------------------------------------------------------------
    async def response_created(self, response_id: str) -> None:
        await self.send(
            {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}}
        )

    async def audio(self, response_id: str, item_id: str, pcm: bytes) -> None:
        await self.send(
            {
                "type": "response.output_audio.delta",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "delta": base64.b64encode(pcm).decode("ascii"),
            }
        )

    async def audio_done(self, response_id: str, item_id: str) -> None:
        await self.send(
            {"type": "response.output_audio.done", "response_id": response_id, "item_id": item_id}
        )

    async def response_done(self, response_id: str, status: str = "completed") -> None:
        await self.send(
            {"type": "response.done", "response": {"id": response_id, "status": status, "output": []}}
        )

    async def speak(
        self, response_id: str, item_id: str, pcm: bytes, *, chunk: int = 4800, done: bool = True
    ) -> None:
        """A whole spoken response, in deltas of `chunk` bytes (Azure sends 4.8-24 kB)."""
        await self.response_created(response_id)
        for offset in range(0, len(pcm), chunk):
            await self.audio(response_id, item_id, pcm[offset : offset + chunk])
        if done:
            await self.audio_done(response_id, item_id)
            await self.response_done(response_id)

    async def caller_said(self, item_id: str, text: str) -> None:
        """The transcript of the caller's turn (`conversation.item.input_audio_transcription.completed`)."""
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item_id,
                "content_index": 0,
                "transcript": text,
            }
        )

    async def assistant_said(self, response_id: str, item_id: str, text: str) -> None:
        """The transcript of an assistant item (`response.output_audio_transcript.done`)."""
        await self.send(
            {
                "type": "response.output_audio_transcript.done",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
                "transcript": text,
            }
        )

    async def speech_started(self, item_id: str = "item_caller", audio_start_ms: int = 0) -> None:
        await self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "item_id": item_id,
                "audio_start_ms": audio_start_ms,
            }
        )

    async def function_call(
        self, response_id: str, name: str, arguments: dict[str, Any], call_id: str
    ) -> None:
        await self.response_created(response_id)
        await self.send(
            {
                "type": "response.function_call_arguments.done",
                "response_id": response_id,
                "item_id": f"fc_{call_id}",
                "call_id": call_id,
                "name": name,
                "arguments": json.dumps(arguments),
            }
        )

    async def drop(self) -> None:
        """Lose the socket mid-call, as a network fault would."""
        await self.ws.close(code=1011, message=b"server fault")


class FakeRealtime:
    def __init__(self, *, api_key: str | None = None, bearer: str | None = None) -> None:
        self.api_key = api_key
        self.bearer = bearer
        self.sockets: list[ModelSocket] = []
        self.upgrade_attempts = 0
        self.refuse_next = 0  # answer this many upgrades with 503
        self.reject_session: str | None = None  # answer session.update with this error code
        self._new_socket = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def serve(self) -> str:
        app = web.Application()
        app.router.add_get("/openai/v1/realtime", self._handle)
        app.router.add_get("/v1/realtime", self._handle)  # OPENAI_BASE_URL=<url>/v1
        self._runner, self.url = await serve(app)
        return self.url

    async def close(self) -> None:
        for socket in self.sockets:
            await socket.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def socket(self, index: int = 0, timeout: float = 5.0) -> ModelSocket:
        async with asyncio.timeout(timeout):
            while len(self.sockets) <= index:
                self._new_socket.clear()
                await self._new_socket.wait()
        return self.sockets[index]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.upgrade_attempts += 1
        if self.refuse_next > 0:
            self.refuse_next -= 1
            raise web.HTTPServiceUnavailable()
        if self.api_key is not None and request.headers.get("api-key") != self.api_key:
            raise web.HTTPUnauthorized()
        if self.bearer is not None and request.headers.get("Authorization") != f"Bearer {self.bearer}":
            raise web.HTTPUnauthorized()
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        socket = ModelSocket(ws, dict(request.headers), dict(request.query), request.path)
        self.sockets.append(socket)
        self._new_socket.set()
        await socket.send({"type": "session.created", "session": {"id": f"sess_{len(self.sockets)}"}})
        async for msg in ws:
            event = json.loads(msg.data)
            socket.events.append((time.monotonic(), event))
            socket._arrived.set()
            if event["type"] == "session.update" and self.reject_session:
                error = {
                    "type": "invalid_request_error",
                    "code": self.reject_session,
                    "message": "Invalid value: 'robot'.",
                }
                await socket.send({"type": "error", "error": error})
            elif event["type"] == "session.update":
                await socket.send({"type": "session.updated", "session": event["session"]})
        socket.ended.set()
        return ws
