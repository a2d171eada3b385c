"""Mid-call actions through the async Call Automation client (hang up, transfer).

Managed identity via ACS_ENDPOINT in Azure; the connection string for local development. The
client is built from endpoint + AzureKeyCredential rather than `from_connection_string`, which
silently rewrites http:// to https:// and so cannot reach a local emulator.
"""

from __future__ import annotations

from azure.communication.callautomation import (
    CommunicationIdentifier,
    CommunicationUserIdentifier,
    PhoneNumberIdentifier,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential

from common.settings_reader import parse_connection_string

from .settings import AcsSettings


def identifier_for(target: str) -> CommunicationIdentifier:
    return PhoneNumberIdentifier(target) if target.startswith("+") else CommunicationUserIdentifier(target)


class CallControl:
    def __init__(self, client: CallAutomationClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, acs: AcsSettings, credential: AsyncTokenCredential | None) -> CallControl:
        if acs.connection_string:
            endpoint, key = parse_connection_string(acs.connection_string)
            # the HMAC policy signs the endpoint's host verbatim: a trailing slash would be signed too
            return cls(CallAutomationClient(endpoint.rstrip("/"), AzureKeyCredential(key)))
        if acs.endpoint is None or credential is None:
            raise ValueError("ACS_ENDPOINT with a credential, or a connection string, is required")
        return cls(CallAutomationClient(acs.endpoint, credential))

    async def hang_up(self, call_connection_id: str) -> None:
        await self._client.get_call_connection(call_connection_id).hang_up(is_for_everyone=True)

    async def transfer(self, call_connection_id: str, target: str, *, operation_context: str) -> None:
        await self._client.get_call_connection(call_connection_id).transfer_call_to_participant(
            identifier_for(target), operation_context=operation_context
        )

    async def close(self) -> None:
        await self._client.close()
