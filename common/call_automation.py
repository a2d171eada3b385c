"""The async Call Automation client both planes use, built one way.

Managed identity (endpoint + Entra credential) in Azure; a connection string for local
development. Built from endpoint + AzureKeyCredential rather than `from_connection_string`, which
silently rewrites http:// to https:// (so a local emulator is unreachable), and with the trailing
slash stripped, because the HMAC policy signs the endpoint's host verbatim.
"""

from __future__ import annotations

from typing import Any

from azure.communication.callautomation import (
    CommunicationIdentifier,
    CommunicationUserIdentifier,
    PhoneNumberIdentifier,
)
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential

from .identifiers import Identifier
from .settings_reader import parse_connection_string

# azure-core's defaults retry 10 times with backoff up to 120 s and 300 s timeouts: a ringing call or
# a hang-up cannot wait that long. Few and quick retries; the callers bound each request as well.
CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.2,
    "connection_timeout": 5,
    "read_timeout": 10,
}


def sdk_identifier(target: Identifier) -> CommunicationIdentifier:
    """A target (a phone number or an ACS user: common.identifiers.parse_target) as the SDK's class."""
    if target.phone_number:
        return PhoneNumberIdentifier(target.phone_number)
    return CommunicationUserIdentifier(target.raw_id)


def call_automation_client(
    *,
    connection_string: str | None,
    endpoint: str | None,
    credential: AsyncTokenCredential | None,
    **options: Any,
) -> CallAutomationClient:
    if connection_string:
        conn_endpoint, key = parse_connection_string(connection_string)
        return CallAutomationClient(
            conn_endpoint.rstrip("/"), AzureKeyCredential(key), **{**CLIENT_OPTIONS, **options}
        )
    if not endpoint or credential is None:
        raise ValueError(
            "ACS_ENDPOINT with a credential, or AZURE_COMMUNICATION_CONNECTION_STRING, is required"
        )
    return CallAutomationClient(endpoint.rstrip("/"), credential, **{**CLIENT_OPTIONS, **options})
