"""In Azure the control plane reaches ACS with managed identity: ACS_ENDPOINT + DefaultAzureCredential."""

from __future__ import annotations

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.managed_identity import ManagedIdentityEndpoint
from functions.runtime import runtime
from tests.conftest import AUDIENCE

CLIENT_ID = "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"


async def test_acs_endpoint_uses_the_managed_identity(clean_env: pytest.MonkeyPatch) -> None:
    identity = ManagedIdentityEndpoint()
    await identity.serve()
    try:
        async with CallAutomationStandIn(token_validator=lambda token: token.startswith("mi-token-")) as acs:
            for name, value in {
                **identity.env(),
                "AZURE_CLIENT_ID": CLIENT_ID,
                "ACS_RESOURCE_ID": AUDIENCE,
                "ACS_ENDPOINT": acs.endpoint,
                "CALLBACK_URI_HOST": "https://functions.example",
                "MEDIA_HOST_URL": "wss://media.example",
            }.items():
                clean_env.setenv(name, value)
            client = runtime().call_automation()
            # azure-core sends bearer tokens over https only, unless a request opts out (the stand-in is http).
            answered = await client.answer_call(
                "ctx", "https://functions.example/api/callbacks", enforce_https=False
            )

            assert answered.call_connection_id in acs.calls
            assert acs.rejected == []
            assert [(r.resource, r.client_id) for r in identity.requests] == [
                ("https://communication.azure.com/", CLIENT_ID)
            ]
    finally:
        await identity.close()
