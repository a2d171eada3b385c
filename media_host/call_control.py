"""Mid-call actions through the async Call Automation client (hang up, transfer).

Failures are `common.acs_requests.AcsError`; a hang-up of a call that had already ended is not one.
"""

from __future__ import annotations

from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials_async import AsyncTokenCredential

from common.acs_requests import acs_host, acs_request, hang_up
from common.call_automation import call_automation_client, sdk_identifier
from common.identifiers import parse_target
from common.telemetry import CallIds, Telemetry

from .settings import AcsSettings

REQUEST_TIMEOUT_SECONDS = 10.0


class CallControl:
    def __init__(self, client: CallAutomationClient, telemetry: Telemetry, *, target: str = "acs") -> None:
        self._client = client
        self._telemetry = telemetry
        self._target = target  # the ACS resource's host, as dependencies name it

    @classmethod
    def from_settings(
        cls, acs: AcsSettings, credential: AsyncTokenCredential | None, telemetry: Telemetry
    ) -> CallControl:
        client = call_automation_client(
            connection_string=acs.connection_string, endpoint=acs.endpoint, credential=credential
        )
        return cls(client, telemetry, target=acs_host(acs.endpoint, acs.connection_string))

    async def hang_up(self, ids: CallIds) -> bool:
        """For everyone; False if the call had already ended."""
        return await hang_up(
            self._client, ids, telemetry=self._telemetry, timeout=REQUEST_TIMEOUT_SECONDS, target=self._target
        )

    async def transfer(self, ids: CallIds, target: str, *, operation_context: str) -> None:
        """To a target as settings hold it (E.164 or ACS user id)."""
        connection = self._client.get_call_connection(ids.call_connection_id)
        await acs_request(
            connection.transfer_call_to_participant(
                sdk_identifier(parse_target(target, "the transfer target")),
                operation_context=operation_context,
            ),
            operation="transfer_call_to_participant",
            telemetry=self._telemetry,
            target=self._target,
            timeout=REQUEST_TIMEOUT_SECONDS,
            ids=ids,
        )

    async def close(self) -> None:
        await self._client.close()
