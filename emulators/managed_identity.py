"""The token endpoint Azure Container Apps and App Service give a managed identity.

`DefaultAzureCredential` finds it through IDENTITY_ENDPOINT / IDENTITY_HEADER, so the real
credential code runs locally and in tests exactly as in Azure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from .serving import serve


@dataclass
class TokenRequest:
    resource: str
    client_id: str | None


@dataclass
class ManagedIdentityEndpoint:
    lifetime_seconds: float = 3600
    secret_header: str = "local-identity-header"
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    url: str = ""

    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret_header}

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_get("/msi/token", self._token)
        self._runner, base = await serve(app, host, port)
        self.url = f"{base}/msi/token"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.secret_header:
            return web.json_response({"error": "invalid identity header"}, status=401)
        resource = request.query.get("resource", "")
        self.requests.append(TokenRequest(resource, request.query.get("client_id")))
        token = f"mi-token-{len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(int(time.time() + self.lifetime_seconds)),
                "resource": resource,
                "token_type": "Bearer",
            }
        )
