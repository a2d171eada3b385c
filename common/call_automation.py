"""The async Call Automation client both planes use, and how every ACS client is pointed at ACS.

Managed identity (endpoint + Entra credential) in Azure; a connection string for local
development. Clients are built from endpoint + AzureKeyCredential rather than
`from_connection_string`, which silently rewrites http:// to https:// (so a local emulator is
unreachable), and with the trailing slash stripped, because the HMAC policy signs the endpoint's
host verbatim (`acs_endpoint_and_credential`).
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


def acs_endpoint_and_credential(
    *, connection_string: str | None, endpoint: str | None, credential: AsyncTokenCredential | None
) -> tuple[str, AzureKeyCredential | AsyncTokenCredential]:
    """What an ACS client is built from: the connection string's endpoint and key, or else the
    endpoint with the (managed identity) credential."""
    if connection_string:
        conn_endpoint, key = parse_connection_string(connection_string)
        return conn_endpoint.rstrip("/"), AzureKeyCredential(key)
    if not endpoint or credential is None:
        raise ValueError(
            "ACS_ENDPOINT with a credential, or AZURE_COMMUNICATION_CONNECTION_STRING, is required"
        )
    return endpoint.rstrip("/"), credential


def call_automation_client(
    *,
    connection_string: str | None,
    endpoint: str | None,
    credential: AsyncTokenCredential | None,
    **options: Any,
) -> CallAutomationClient:
    url, auth = acs_endpoint_and_credential(
        connection_string=connection_string, endpoint=endpoint, credential=credential
    )
    return CallAutomationClient(url, auth, **{**CLIENT_OPTIONS, **options})
