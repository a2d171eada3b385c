"""In Azure the control plane reaches ACS with managed identity: ACS_ENDPOINT + DefaultAzureCredential."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.managed_identity import ManagedIdentityEndpoint
from functions.runtime import runtime
from tests.conftest import AUDIENCE

CLIENT_ID = "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
CALLBACK = "https://functions.example/api/callbacks"


@pytest.fixture
async def identity() -> AsyncIterator[ManagedIdentityEndpoint]:
    endpoint = ManagedIdentityEndpoint()
    await endpoint.serve()
    try:
        yield endpoint
    finally:
        await endpoint.close()


@pytest.fixture
async def acs(
    identity: ManagedIdentityEndpoint, clean_env: pytest.MonkeyPatch
) -> AsyncIterator[CallAutomationStandIn]:
    """ACS taking only the managed identity's tokens, and the settings of a deployment pointing at it."""
    async with CallAutomationStandIn(token_validator=lambda token: token.startswith("mi-token-")) as standin:
        for name, value in {
            **identity.env(),
            "ACS_RESOURCE_ID": AUDIENCE,
            "ACS_ENDPOINT": standin.endpoint,
            "CALLBACK_URI_HOST": "https://functions.example",
            "MEDIA_HOST_URL": "wss://media.example",
        }.items():
            clean_env.setenv(name, value)
        yield standin


async def test_acs_endpoint_uses_the_managed_identity(
    identity: ManagedIdentityEndpoint, acs: CallAutomationStandIn, clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    client = runtime().call_automation()
    # azure-core sends bearer tokens over https only, unless a request opts out (the stand-in is http).
    answered = await client.answer_call("ctx", CALLBACK, enforce_https=False)

    assert answered.call_connection_id in acs.calls
    assert acs.rejected == []
    assert [(r.resource, r.client_id) for r in identity.requests] == [
        ("https://communication.azure.com/", CLIENT_ID)
    ]


async def test_the_identity_client_shares_the_managed_identity(
    identity: ManagedIdentityEndpoint, acs: CallAutomationStandIn
) -> None:
    rt = runtime()
    assert rt.identity() is rt.identity()  # one client per runtime
    user = await rt.identity().create_user(enforce_https=False)
    await rt.call_automation().answer_call("ctx", CALLBACK, enforce_https=False)

    assert list(acs.identities.users) == [user.raw_id]
    assert acs.rejected == []
    # one credential for both clients: one token, fetched once
    assert [r.resource for r in identity.requests] == ["https://communication.azure.com/"]
