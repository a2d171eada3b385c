"""Mid-call actions through the async Call Automation client (hang up, transfer)."""

from __future__ import annotations

from azure.communication.callautomation import (
    CommunicationIdentifier,
    CommunicationUserIdentifier,
    PhoneNumberIdentifier,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials_async import AsyncTokenCredential

from common.call_automation import call_automation_client

from .settings import AcsSettings


def identifier_for(target: str) -> CommunicationIdentifier:
    return PhoneNumberIdentifier(target) if target.startswith("+") else CommunicationUserIdentifier(target)


class CallControl:
    def __init__(self, client: CallAutomationClient) -> None:
        self._client = client

    @classmethod
    def from_settings(cls, acs: AcsSettings, credential: AsyncTokenCredential | None) -> CallControl:
        return cls(
            call_automation_client(
                connection_string=acs.connection_string, endpoint=acs.endpoint, credential=credential
            )
        )

    async def hang_up(self, call_connection_id: str) -> None:
        await self._client.get_call_connection(call_connection_id).hang_up(is_for_everyone=True)

    async def transfer(self, call_connection_id: str, target: str, *, operation_context: str) -> None:
        await self._client.get_call_connection(call_connection_id).transfer_call_to_participant(
            identifier_for(target), operation_context=operation_context
        )

    async def close(self) -> None:
        await self._client.close()
