"""Application Insights' ingestion endpoint (`POST /v2.1/track`), recording what it receives.

Point APPLICATIONINSIGHTS_CONNECTION_STRING at it and the real exporter sends its envelopes here.
`close()` kills it mid-run, to prove a failing ingestion endpoint costs a call nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .serving import serve


@dataclass
class IngestionEndpoint:
    instrumentation_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)  # raw, to search for anything that must not be there
    url: str = ""
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={self.instrumentation_key};IngestionEndpoint={self.url}"

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_post("/v2.1/track", self._track)
        self._runner, self.url = await serve(app, host, port)
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _track(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.bodies.append(body)
        batch = json.loads(body)
        self.envelopes.extend(batch)
        self._arrived.set()
        return web.json_response({"itemsReceived": len(batch), "itemsAccepted": len(batch), "errors": []})

    async def wait_until(self, done: Callable[[IngestionEndpoint], bool], timeout: float = 15.0) -> None:
        """Until what has arrived satisfies `done` (exporters send in the background, in batches)."""
        async with asyncio.timeout(timeout):
            while not done(self):
                self._arrived.clear()
                await self._arrived.wait()

    def of_type(self, base_type: str) -> list[dict[str, Any]]:
        return [e for e in self.envelopes if e["data"]["baseType"] == base_type]

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.of_type("EventData") if name is None or e["data"]["baseData"]["name"] == name]
