"""Shared fixtures: the ACS identity, the Call Automation stand-in, a scripted model, the media host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from emulators.acs.call_automation import CallAutomationStandIn, CallState
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from emulators.app_insights import IngestionEndpoint
from media_host.app import create_app
from media_host.host import HOST, MediaHost
from media_host.settings import MediaSettings
from media_host.tools import Tool
from tests.fake_realtime import FakeRealtime

AUDIENCE = "5e7a2b1c-0d4f-4a3e-9b8c-1f2e3d4c5b6a"  # an ACS immutable resource id
MODEL_KEY = "test-model-key"


@pytest.fixture(scope="session")
def foreign_key() -> rsa.RSAPrivateKey:
    # A key the issuer never publishes; generated once because RSA keygen is the slow part.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
async def issuer() -> AsyncIterator[AcsTokenIssuer]:
    iss = AcsTokenIssuer()
    await iss.serve()
    yield iss
    await iss.close()


@pytest.fixture
async def ingestion() -> AsyncIterator[IngestionEndpoint]:
    """Application Insights' ingestion endpoint, recording what the real exporter sends."""
    endpoint = IngestionEndpoint()
    await endpoint.serve()
    yield endpoint
    await endpoint.close()


@pytest.fixture
async def acs() -> AsyncIterator[CallAutomationStandIn]:
    async with CallAutomationStandIn() as standin:
        yield standin


@pytest.fixture
async def model() -> AsyncIterator[FakeRealtime]:
    fake = FakeRealtime(api_key=MODEL_KEY)
    await fake.serve()
    yield fake
    await fake.close()


def media_env(
    issuer: AcsTokenIssuer, acs: CallAutomationStandIn, model: FakeRealtime, **overrides: str
) -> dict[str, str]:
    env = {
        "ACS_RESOURCE_ID": AUDIENCE,
        "ACS_JWT_ISSUER": issuer.issuer,
        "ACS_OPENID_CONFIG_URL": issuer.openid_config_url,
        "AZURE_COMMUNICATION_CONNECTION_STRING": acs.connection_string,
        "AZURE_OPENAI_ENDPOINT": model.url,
        "AZURE_OPENAI_API_KEY": MODEL_KEY,
        "MODEL_CONNECT_BACKOFF_SECONDS": "0.02",
        "MEDIA_WORKERS": "1",  # the lone process, whatever this machine's cores; tests that want more say so
        # one 20 ms frame per message both ways, so tests can count frames and need not keep streaming to
        # push out a held one; chunked playback and batched appends have tests of their own
        "MEDIA_PLAYBACK_CHUNK_MS": "20",
        "MEDIA_MODEL_APPEND_MS": "20",
    }
    env.update(overrides)
    return env


class MediaHostUnderTest:
    def __init__(self, server: TestServer, issuer: AcsTokenIssuer, acs: CallAutomationStandIn) -> None:
        self.server = server
        self.issuer = issuer
        self.acs = acs

    @property
    def state(self) -> MediaHost:
        return self.server.app[HOST]

    @property
    def ws_url(self) -> str:
        return str(self.server.make_url("/ws/media"))

    async def wait_calls(self, count: int, timeout: float = 5.0) -> None:
        """Until exactly `count` calls are in progress (handlers finish their cleanup asynchronously)."""
        async with asyncio.timeout(timeout):
            while len(self.state.calls) != count:
                await asyncio.sleep(0.01)

    async def call(
        self, *, sample_rate: int = 24_000, token: str | None = "valid", query: str = ""
    ) -> MediaLeg:
        """Open a media stream the way ACS does, with a fresh valid JWT unless told otherwise.

        The call is registered with the Call Automation stand-in first, as answering it would have.
        """
        leg = MediaLeg(sample_rate=sample_rate)
        register_call(self.acs, leg)
        if token == "valid":
            token = self.issuer.sign(audience=AUDIENCE, lifetime_seconds=86_400)
        await leg.connect(self.ws_url + (f"?{query}" if query else ""), token)
        return leg


def register_call(acs: CallAutomationStandIn, leg: MediaLeg) -> None:
    """Tell the stand-in about a connected call, as answering it through ACS would have."""
    acs.calls[leg.call_connection_id] = CallState(
        call_connection_id=leg.call_connection_id,
        server_call_id=f"server-{leg.call_connection_id}",
        correlation_id=leg.correlation_id,
        state="connected",
        callback_uri="https://functions.example/api/callbacks",
    )


StartMediaHost = Callable[..., Awaitable[MediaHostUnderTest]]


@pytest.fixture
def start_media_host(
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
    issuer: AcsTokenIssuer,
    acs: CallAutomationStandIn,
    model: FakeRealtime,
) -> StartMediaHost:
    async def start(*, tools: list[Tool] | None = None, **env: str) -> MediaHostUnderTest:
        settings = MediaSettings.from_env(media_env(issuer, acs, model, **env))
        server = await aiohttp_server(create_app(settings, tools=tools))
        return MediaHostUnderTest(server, issuer, acs)

    return start
