"""The stand-in's Identity API, driven by the real azure-communication-identity 1.5.0 clients.

The same endpoint, key and HMAC check as Call Automation. The sync client puts the user id on the
wire percent-encoded (`8%3Aacs%3A...`) but signs it decoded, as the aio client sends it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import aiohttp
import jwt
import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationUserIdentifier
from azure.communication.identity.aio import CommunicationIdentityClient as AsyncIdentityClient
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError

from emulators.acs.call_automation import CallAutomationStandIn
from tests.test_acs_call_automation_standin import _sdk_signed_headers


@pytest.fixture
async def standin() -> AsyncIterator[CallAutomationStandIn]:
    async with CallAutomationStandIn() as stand_in:
        yield stand_in


def _async_client(stand_in: CallAutomationStandIn, key: str | None = None) -> AsyncIdentityClient:
    return AsyncIdentityClient(stand_in.endpoint.rstrip("/"), AzureKeyCredential(key or stand_in.access_key))


def _sync_client(stand_in: CallAutomationStandIn) -> CommunicationIdentityClient:
    return CommunicationIdentityClient(stand_in.endpoint, AzureKeyCredential(stand_in.access_key))


def _minutes_from_now(expires_on: str) -> float:
    return (datetime.fromisoformat(expires_on).timestamp() - time.time()) / 60


async def test_create_user_and_token_issues_a_user_of_the_resource(standin: CallAutomationStandIn) -> None:
    async with _async_client(standin) as client:
        user, token = await client.create_user_and_token(["voip"], token_expires_in=timedelta(minutes=60))

    created = await standin.wait_for("identity_create")
    assert (created.path, created.query) == ("/identities", {"api-version": "2023-10-01"})
    assert created.body == {"createTokenWithScopes": ["voip"], "expiresInMinutes": 60}
    assert user.raw_id.startswith(f"8:acs:{standin.resource_id}_")
    assert list(standin.identities.users) == [user.raw_id]
    assert standin.identities.user_of(token.token) == user.raw_id
    expires_on = str(token.expires_on)  # ACS's string, passed through by the SDK
    assert expires_on.endswith("Z") and 59 < _minutes_from_now(expires_on) <= 60
    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["skypeid"] == user.raw_id.removeprefix("8:")
    assert claims["acsScope"] == "voip"  # where the browser Calling SDK looks for it
    assert claims["exp"] == int(datetime.fromisoformat(expires_on).timestamp())
    assert standin.rejected == []


async def test_user_without_token_then_tokens_revoked_and_user_deleted(
    standin: CallAutomationStandIn,
) -> None:
    async with _async_client(standin) as client:
        user = await client.create_user()  # no body: a user only, its token later
        first = await client.get_token(user, ["voip"])
    sync = _sync_client(standin)  # has no close(): its requests session goes with it
    second = await asyncio.to_thread(sync.get_token, user, ["voip", "chat"])  # id percent-encoded
    assert (await standin.wait_for("identity_create")).body is None
    issued = [await standin.wait_for("identity_token") for _ in range(2)]
    assert [r.identity_id for r in issued] == [user.raw_id] * 2
    assert issued[1].body == {"scopes": ["voip", "chat"]}
    assert 1439 < _minutes_from_now(str(first.expires_on)) <= 1440  # the service's default, a day
    assert standin.identities.user_of(first.token) == standin.identities.user_of(second.token) == user.raw_id

    await asyncio.to_thread(sync.revoke_tokens, user)
    assert standin.identities.user_of(first.token) is None
    assert standin.identities.user_of(second.token) is None
    await asyncio.to_thread(sync.delete_user, user)
    assert standin.identities.users == {}
    with pytest.raises(ResourceNotFoundError):
        await asyncio.to_thread(sync.get_token, user, ["voip"])
    assert standin.rejected == []


async def test_wrong_key_is_401_and_issues_nothing(standin: CallAutomationStandIn) -> None:
    async with _async_client(standin, key=CallAutomationStandIn().access_key) as client:
        with pytest.raises(ClientAuthenticationError) as refused:
            await client.create_user_and_token(["voip"])
    assert refused.value.status_code == 401
    assert standin.identities.users == {} and standin.requests == []
    assert standin.rejected == [("/identities", standin.rejected[0][1])]
    assert "signature mismatch" in standin.rejected[0][1]


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        ("short", 400, "expiresInMinutes must be an integer within [60, 1440]"),
        ("long", 400, "expiresInMinutes must be an integer within [60, 1440]"),
        ("scope", 400, "unknown scope(s) ['teleport']"),
        ("stranger", 404, "no identity with this id was issued by this resource"),
    ],
)
async def test_refusals_say_what_is_wrong(
    standin: CallAutomationStandIn, call: str, status: int, message: str
) -> None:
    async with _async_client(standin) as client:
        user = await client.create_user()
        with pytest.raises(HttpResponseError) as refused:
            if call == "short":
                await client.get_token(user, ["voip"], token_expires_in=timedelta(minutes=59))
            elif call == "long":
                await client.create_user_and_token(["voip"], token_expires_in=timedelta(minutes=1441))
            elif call == "scope":
                await client.get_token(user, ["teleport"])
            else:
                stranger = CommunicationUserIdentifier(f"8:acs:{standin.resource_id}_not-issued-here")
                await client.get_token(stranger, ["voip"])
    assert refused.value.status_code == status
    assert refused.value.error is not None and message in str(refused.value.error.message)
    assert list(standin.identities.users) == [user.raw_id]  # the refused create made no user


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"createTokenWithScopes": ["voip"], "userId": "8:acs:mine"}, "unknown field(s) ['userId']"),
        ({"createTokenWithScopes": []}, "createTokenWithScopes must be a non-empty list of scopes"),
        (["voip"], "the body must be a JSON object"),
    ],
)
async def test_malformed_bodies_are_400(standin: CallAutomationStandIn, body: object, message: str) -> None:
    path_qs = "/identities?api-version=2023-10-01"
    text = json.dumps(body)
    headers = {**_sdk_signed_headers(standin, "POST", path_qs, text), "Content-Type": "application/json"}
    url = standin.endpoint.rstrip("/") + path_qs
    async with aiohttp.ClientSession() as http, http.post(url, data=text, headers=headers) as answer:
        assert answer.status == 400
        assert message in (await answer.json())["error"]["message"]
    assert standin.identities.users == {} and standin.rejected == []
