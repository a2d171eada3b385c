"""Mid-call actions through the async Call Automation client (hang up, transfer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError

from common.call_automation import ACS_TARGET, call_automation_client, sdk_identifier
from common.telemetry import CallIds, Telemetry

from .settings import AcsSettings

REQUEST_TIMEOUT_SECONDS = 10.0


class CallControl:
    def __init__(self, client: CallAutomationClient, telemetry: Telemetry) -> None:
        self._client = client
        self._telemetry = telemetry

    @classmethod
    def from_settings(
        cls, acs: AcsSettings, credential: AsyncTokenCredential | None, telemetry: Telemetry
    ) -> CallControl:
        client = call_automation_client(
            connection_string=acs.connection_string, endpoint=acs.endpoint, credential=credential
        )
        return cls(client, telemetry)

    async def hang_up(self, ids: CallIds) -> None:
        connection = self._client.get_call_connection(ids.call_connection_id)
        async with self._traced("hang_up", ids):
            await connection.hang_up(is_for_everyone=True)

    async def transfer(self, ids: CallIds, target: str, *, operation_context: str) -> None:
        connection = self._client.get_call_connection(ids.call_connection_id)
        async with self._traced("transfer_call_to_participant", ids):
            await connection.transfer_call_to_participant(
                sdk_identifier(target), operation_context=operation_context
            )

    @contextlib.asynccontextmanager
    async def _traced(self, operation: str, ids: CallIds) -> AsyncIterator[None]:
        """Each Call Automation request as a dependency, with its outcome."""
        started = time.monotonic()
        code = "200"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                yield
        except HttpResponseError as exc:
            code = str(exc.status_code or "error")
            raise
        except TimeoutError:
            code = "timeout"
            raise
        except Exception:
            code = "error"
            raise
        finally:
            self._telemetry.dependency(
                f"ACS {operation}",
                target=ACS_TARGET,
                kind="HTTP",
                duration_s=time.monotonic() - started,
                success=code == "200",
                result_code=code,
                ids=ids,
            )

    async def close(self) -> None:
        await self._client.close()
