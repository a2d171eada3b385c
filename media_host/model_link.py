"""Opening the socket to the realtime model: authentication and bounded retries.

Azure OpenAI: Entra ID by default, with one async credential per process and a bearer token cached
and refreshed in the background ahead of expiry, so a call never waits on credential discovery; an
API key, when configured, is sent as `api-key` instead. OpenAI: the API key as a bearer token.
Neither gets an `OpenAI-Beta` header: that belongs to the preview protocol; GA needs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Literal, TypeAlias
from urllib.parse import urlsplit

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential

from common.telemetry import CallIds, Telemetry

from .settings import ModelSettings

log = logging.getLogger(__name__)

# text messages arrive as bytes (decode_text=False): msgspec decodes them without a str in between
ModelSocket: TypeAlias = "aiohttp.ClientWebSocketResponse[Literal[False]]"

COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


class BearerTokenCache:
    def __init__(
        self,
        credential: AsyncTokenCredential,
        *,
        scope: str = COGNITIVE_SCOPE,
        refresh_ahead_seconds: float = 300,
    ) -> None:
        self._credential = credential
        self._scope = scope
        self._ahead = refresh_ahead_seconds
        self._token: str | None = None
        self._expires_on = 0.0
        self._lock = asyncio.Lock()
        self._refresher: asyncio.Task[None] | None = None

    async def get(self) -> str:
        if self._token is None or self._expires_on - time.time() < self._ahead:
            async with self._lock:
                if self._token is None or self._expires_on - time.time() < self._ahead:
                    await self._fetch()
        assert self._token is not None
        return self._token

    async def _fetch(self) -> None:
        access = await self._credential.get_token(self._scope)
        self._token, self._expires_on = access.token, float(access.expires_on)

    def start(self) -> None:
        """Warm the cache and keep it fresh in the background."""
        self._refresher = asyncio.create_task(self._refresh_forever(), name="token-refresher")

    async def _refresh_forever(self) -> None:
        while True:
            try:
                async with self._lock:
                    await self._fetch()
                delay = max(self._expires_on - time.time() - self._ahead, 5.0)
            except Exception as exc:  # a failed refresh must not kill the process; calls retry on demand
                log.warning("Entra token refresh failed (%s); retrying in 10 s", type(exc).__name__)
                delay = 10.0
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher


class ModelUnavailable(Exception):
    """The model socket could not be opened within the configured attempts."""


class ModelConnector:
    def __init__(
        self,
        settings: ModelSettings,
        http: aiohttp.ClientSession,
        tokens: BearerTokenCache | None,
        telemetry: Telemetry,
    ) -> None:
        self._settings = settings
        self._http = http
        self._tokens = tokens
        self._telemetry = telemetry
        self.url = settings.realtime_url()
        # recorded with the model session (ModelSessionStarted) next to settings.deployment
        self.auth_mode = (
            "openai-key" if settings.vendor == "openai" else "api-key" if settings.api_key else "entra-id"
        )

    async def _headers(self) -> dict[str, str]:
        key = self._settings.api_key
        if self._settings.vendor == "openai":
            assert key is not None
            return {"Authorization": f"Bearer {key}"}
        if key:
            return {"api-key": key}
        assert self._tokens is not None
        return {"Authorization": f"Bearer {await self._tokens.get()}"}

    async def connect(self, ids: CallIds) -> ModelSocket:
        """Open the socket, retrying with exponential backoff; raise ModelUnavailable at the end."""
        attempts = self._settings.connect_attempts
        last = "no attempt made"
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            code = ""
            try:
                async with asyncio.timeout(
                    self._settings.connect_timeout_seconds
                ):  # a silent server must not hang a call
                    socket = await self._http.ws_connect(
                        self.url,
                        headers=await self._headers(),
                        timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                        heartbeat=20.0,
                        max_msg_size=16 * 1024 * 1024,
                        decode_text=False,  # msgspec decodes the bytes; bad UTF-8 is one dropped event
                    )
                self._record(ids, started, "101", success=True, attempt=attempt)
                return socket
            except aiohttp.WSServerHandshakeError as exc:
                # 401/403 will not heal by retrying quickly, but a 429/5xx might; both are bounded anyway
                code = str(exc.status)
                last = f"HTTP {exc.status} on upgrade" + (
                    " (check the role assignment or key)" if exc.status in (401, 403) else ""
                )
            except TimeoutError:
                last = f"no upgrade within {self._settings.connect_timeout_seconds:g} s"
            except (aiohttp.ClientError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # credential failures (no managed identity, expired login, ...)
                last = f"credential error {type(exc).__name__}: {exc}"
            self._record(ids, started, code or "error", success=False, attempt=attempt, error=last)
            log.warning("model connect attempt %d/%d failed: %s", attempt, attempts, last, extra=ids.dims())
            if attempt < attempts:
                await asyncio.sleep(self._settings.connect_backoff_seconds * 2 ** (attempt - 1))
        raise ModelUnavailable(f"model socket {self.url} unreachable after {attempts} attempts: {last}")

    def _record(self, ids: CallIds, started: float, code: str, *, success: bool, **props: object) -> None:
        self._telemetry.dependency(
            "model socket",
            target=urlsplit(self.url).netloc,
            kind="WebSocket",
            duration_s=time.monotonic() - started,
            success=success,
            result_code=code,
            ids=ids,
            deployment=self._settings.deployment,
            auth_mode=self.auth_mode,
            **props,
        )
