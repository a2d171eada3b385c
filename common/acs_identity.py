"""The async ACS Identity client (users and their access tokens), pointed at ACS like every ACS client."""

from __future__ import annotations

from azure.communication.identity.aio import CommunicationIdentityClient
from azure.core.credentials_async import AsyncTokenCredential

from .call_automation import CLIENT_OPTIONS, acs_endpoint_and_credential


def identity_client(
    *, connection_string: str | None, endpoint: str | None, credential: AsyncTokenCredential | None
) -> CommunicationIdentityClient:
    url, auth = acs_endpoint_and_credential(
        connection_string=connection_string, endpoint=endpoint, credential=credential
    )
    return CommunicationIdentityClient(url, auth, **CLIENT_OPTIONS)
