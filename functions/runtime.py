"""The control plane's process-wide objects: settings, one Call Automation client, one Identity
client, one JWT verifier, and the one managed-identity credential the clients share.

Created on first use, not at import: indexing must succeed whatever the settings say. The Functions
worker runs every async handler on one event loop, so one of each serves all invocations. They are
bound to that loop, which is why tests (a loop per test) call reset().
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass

from azure.communication.callautomation.aio import CallAutomationClient
from azure.communication.identity.aio import CommunicationIdentityClient
from azure.identity.aio import DefaultAzureCredential

from common import log_safety
from common.acs_identity import identity_client
from common.acs_jwt import AcsJwtVerifier
from common.acs_requests import acs_host
from common.call_automation import CLIENT_OPTIONS, call_automation_client
from common.telemetry import Telemetry

from .dedupe import RecentKeys
from .rate_limit import SlidingWindow
from .settings import ControlSettings

log = logging.getLogger(__name__)
# azure-core logs every request and response (headers redacted) at INFO: noise in Application
# Insights at the host's Information level. Failures still surface, through our own log lines.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

# azure-core retries 408/429/5xx and connection errors by itself (common.call_automation.CLIENT_OPTIONS):
# few and quick, since a ringing call does not wait long and Event Grid's redelivery (we answer 503)
# is the slower second line.
ACS_ATTEMPTS = CLIENT_OPTIONS["retry_total"] + 1


class Runtime:
    def __init__(self, settings: ControlSettings) -> None:
        log_safety.install()  # every record of the worker's process: bounded, and writable whatever it holds
        self.settings = settings
        self.telemetry = Telemetry.from_settings(settings.telemetry, plane="functions")
        self.telemetry.attach_logs("functions")
        # IncomingCall deliveries already handled here (see dedupe.py).
        self.handled_calls = RecentKeys(ttl_seconds=15 * 60, max_keys=10_000)
        self.outbound_calls = SlidingWindow(settings.outbound_calls_per_minute, window_seconds=60.0)
        self._client: CallAutomationClient | None = None
        self._identity: CommunicationIdentityClient | None = None
        self._credential: DefaultAzureCredential | None = None
        self._verifier: AcsJwtVerifier | None = None

    @property
    def acs_host(self) -> str:
        """The ACS resource's host: the target of every ACS dependency record."""
        return acs_host(self.settings.acs_endpoint, self.settings.connection_string)

    def call_automation(self) -> CallAutomationClient:
        """The async client; callers have checked that the ACS client settings are usable."""
        if self._client is None:
            s = self.settings
            self._client = call_automation_client(
                connection_string=s.connection_string,
                endpoint=s.acs_endpoint,
                credential=self._acs_credential(),
            )
        return self._client

    def identity(self) -> CommunicationIdentityClient:
        """The async Identity client; callers have checked that the ACS client settings are usable."""
        if self._identity is None:
            s = self.settings
            self._identity = identity_client(
                connection_string=s.connection_string,
                endpoint=s.acs_endpoint,
                credential=self._acs_credential(),
            )
        return self._identity

    def _acs_credential(self) -> DefaultAzureCredential | None:
        """Managed identity in Azure (AZURE_CLIENT_ID picks a user-assigned one), one for every client;
        None with a connection string, whose key the clients use instead."""
        if self._credential is None and not self.settings.connection_string:
            self._credential = DefaultAzureCredential()
        return self._credential

    def jwt_verifier(self) -> AcsJwtVerifier:
        if self._verifier is None:
            s = self.settings
            self._verifier = AcsJwtVerifier(
                audience=s.resource_id, issuer=s.jwt_issuer, openid_config_url=s.openid_config_url
            )
        return self._verifier

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._identity is not None:
            await self._identity.close()
        if self._credential is not None:
            await self._credential.close()
        if self._verifier is not None:
            await self._verifier.close()
        await asyncio.to_thread(self.telemetry.close)  # flushes, bounded; joins the exporter's thread


@dataclass
class _Slot:
    runtime: Runtime | None = None


_slot = _Slot()


def runtime() -> Runtime:
    if _slot.runtime is None:
        settings = ControlSettings.from_env(os.environ)
        if settings.faults:
            # Once per process, every problem at once; functions needing a bad setting answer 503.
            messages = sorted(set(settings.faults.values()))
            log.error("control plane settings are invalid:\n  - %s", "\n  - ".join(messages))
        _slot.runtime = Runtime(settings)
    return _slot.runtime


async def reset() -> None:
    """Close and forget everything, so the next use re-reads settings (in this event loop)."""
    current, _slot.runtime = _slot.runtime, None
    if current is not None:
        await current.close()
