"""How the media host authenticates to Azure OpenAI: a key, or Entra ID through the real
DefaultAzureCredential (OpenAI's bearer key: tests/test_openai_vendor.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import pytest
from azure.core.credentials import AccessToken

from emulators.managed_identity import ManagedIdentityEndpoint
from media_host.model_link import BearerTokenCache
from tests.conftest import MODEL_KEY, StartMediaHost
from tests.fake_realtime import FakeRealtime

CLIENT_ID = "0b3f5c1e-7a2d-4e8f-9c6b-2d1e0f9a8b7c"


@pytest.fixture
async def identity(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ManagedIdentityEndpoint]:
    endpoint = ManagedIdentityEndpoint()
    await endpoint.serve()
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)  # the user-assigned identity, as in Container Apps
    yield endpoint
    await endpoint.close()


async def test_azure_key_goes_in_the_api_key_header_on_the_ga_path(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    host = await start_media_host()
    leg = await host.call()
    socket = await model.socket()
    await socket.wait_for("session.update")

    assert (socket.path, socket.query) == ("/openai/v1/realtime", {"model": "gpt-realtime"})
    headers = {name.lower(): value for name, value in socket.headers.items()}
    assert headers["api-key"] == MODEL_KEY
    assert "authorization" not in headers
    assert "openai-beta" not in headers
    (started,) = (json.loads(m) for r in caplog.records if '"ModelSessionStarted"' in (m := r.getMessage()))
    assert (started["deployment"], started["auth_mode"]) == ("gpt-realtime", "api-key")  # the audit record
    await leg.close()


async def test_entra_token_from_managed_identity_reaches_model(
    start_media_host: StartMediaHost, model: FakeRealtime, identity: ManagedIdentityEndpoint
) -> None:
    model.api_key, model.bearer = None, "mi-token-1"
    host = await start_media_host(AZURE_OPENAI_API_KEY="")
    first, second = await host.call(), await host.call()
    socket = await model.socket(1)

    assert "api-key" not in socket.headers
    assert [(r.resource, r.client_id) for r in identity.requests] == [
        ("https://cognitiveservices.azure.com", CLIENT_ID)
    ]
    assert model.upgrade_attempts == 2  # both calls used the one cached token
    await first.close()
    await second.close()


async def test_model_401_is_retried_then_the_call_is_hung_up(
    start_media_host: StartMediaHost,
    model: FakeRealtime,
    identity: ManagedIdentityEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model.api_key, model.bearer = None, "a-token-the-model-expects"
    host = await start_media_host(AZURE_OPENAI_API_KEY="", MODEL_CONNECT_ATTEMPTS="2")
    leg = await host.call()
    await leg.wait_closed()

    assert model.upgrade_attempts == 2
    assert "HTTP 401 on upgrade (check the role assignment or key)" in caplog.text


class CountingCredential:
    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        self.calls += 1
        return AccessToken(f"token-{self.calls}", int(time.time() + self.lifetime))

    async def close(self) -> None:
        pass


async def test_token_is_cached_until_close_to_expiry() -> None:
    long_lived = CountingCredential(lifetime=3600)
    cache = BearerTokenCache(long_lived)  # type: ignore[arg-type]
    assert [await cache.get() for _ in range(5)] == ["token-1"] * 5

    expiring = CountingCredential(lifetime=200)  # inside the 5-minute refresh-ahead window
    cache = BearerTokenCache(expiring)  # type: ignore[arg-type]
    assert [await cache.get() for _ in range(3)] == ["token-1", "token-2", "token-3"]
