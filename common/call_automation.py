"""The async Call Automation client both planes use, built one way.

Managed identity (endpoint + Entra credential) in Azure; a connection string for local
development. Built from endpoint + AzureKeyCredential rather than `from_connection_string`, which
silently rewrites http:// to https:// (so a local emulator is unreachable), and with the trailing
slash stripped, because the HMAC policy signs the endpoint's host verbatim.
"""

from __future__ import annotations

from typing import Any

from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential

from .settings_reader import parse_connection_string


def call_automation_client(
    *,
    connection_string: str | None,
    endpoint: str | None,
    credential: AsyncTokenCredential | None,
    **options: Any,
) -> CallAutomationClient:
    if connection_string:
        conn_endpoint, key = parse_connection_string(connection_string)
        return CallAutomationClient(conn_endpoint.rstrip("/"), AzureKeyCredential(key), **options)
    if not endpoint or credential is None:
        raise ValueError(
            "ACS_ENDPOINT with a credential, or AZURE_COMMUNICATION_CONNECTION_STRING, is required"
        )
    return CallAutomationClient(endpoint.rstrip("/"), credential, **options)
