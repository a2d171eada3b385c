"""The Call Automation stand-in, driven by the real azure-communication-callautomation 1.6.0 clients.

Sync clients block, and the stand-in runs on the test's event loop, so sync calls go through
``asyncio.to_thread``. Clients are built from ``endpoint`` + ``AzureKeyCredential`` because
``from_connection_string`` forces https:// (see test_from_connection_string_forces_https).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from azure.communication.callautomation import (
    AudioFormat,
    CallAutomationClient,
    CallConnectionProperties,
    MediaStreamingAudioChannelType,
    MediaStreamingContentType,
    MediaStreamingOptions,
    PhoneNumberIdentifier,
    StreamingTransportType,
)
from azure.communication.callautomation._shared import policy as hmac_policy_module
from azure.communication.callautomation._shared.policy import HMACCredentialsPolicy
from azure.communication.callautomation.aio import CallAutomationClient as AsyncCallAutomationClient
from azure.core.credentials import AccessToken, AzureKeyCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from emulators.acs.call_automation import CallAutomationStandIn

CALLBACK = "https://app.example/api/callbacks?token=abc"


@pytest.fixture
async def standin() -> AsyncIterator[CallAutomationStandIn]:
    stand_in = CallAutomationStandIn()
    await stand_in.serve()
    try:
        yield stand_in
    finally:
        await stand_in.close()


def _client(stand_in: CallAutomationStandIn, key: str | None = None) -> CallAutomationClient:
    return CallAutomationClient(stand_in.endpoint, AzureKeyCredential(key or stand_in.access_key))


def _async_client(stand_in: CallAutomationStandIn) -> AsyncCallAutomationClient:
    return AsyncCallAutomationClient(stand_in.endpoint, AzureKeyCredential(stand_in.access_key))


def _media() -> MediaStreamingOptions:
    return MediaStreamingOptions(
        transport_url="wss://x/ws/media",
        transport_type=StreamingTransportType.WEBSOCKET,
        content_type=MediaStreamingContentType.AUDIO,
        audio_channel_type=MediaStreamingAudioChannelType.MIXED,
        start_media_streaming=True,
        enable_bidirectional=True,
        audio_format=AudioFormat.PCM24_K_MONO,
    )


async def _answer(
    stand_in: CallAutomationStandIn, context: str = "ctx-1", **kwargs: Any
) -> CallConnectionProperties:
    client = _client(stand_in)
    try:
        return await asyncio.to_thread(client.answer_call, context, CALLBACK, **kwargs)
    finally:
        client.close()


def _sdk_signed_headers(
    stand_in: CallAutomationStandIn, method: str, path_qs: str, body: str = ""
) -> dict[str, str]:
    """Headers signed by the SDK's own HMAC policy, for requests the SDK itself would never send."""
    request = HttpRequest(method, stand_in.endpoint.rstrip("/") + path_qs, content=body or None)
    policy = HMACCredentialsPolicy(stand_in.endpoint, AzureKeyCredential(stand_in.access_key))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return {k: v for k, v in request.headers.items() if k.lower() != "content-length"}


async def test_answer_call_sends_exact_wire_body_and_sdk_parses_properties(
    standin: CallAutomationStandIn,
) -> None:
    props = await _answer(standin, media_streaming=_media())

    rec = await standin.wait_for("answer")
    assert rec.method == "POST"
    assert rec.path == "/calling/callConnections:answer"
    assert rec.query == {"api-version": "2026-03-12"}
    assert rec.body == {
        "incomingCallContext": "ctx-1",
        "callbackUri": CALLBACK,
        "mediaStreamingOptions": {
            "transportType": "websocket",
            "audioChannelType": "mixed",
            "transportUrl": "wss://x/ws/media",
            "contentType": "audio",
            "startMediaStreaming": True,
            "enableBidirectional": True,
            "audioFormat": "pcm24KMono",
        },
    }
    assert rec.headers["Repeatability-Request-ID"]

    assert props.call_connection_id is not None
    call = standin.calls[props.call_connection_id]
    assert rec.call_connection_id is None  # answer is not addressed to an existing call
    assert props.call_connection_state == "connected"
    assert props.server_call_id == call.server_call_id
    assert props.correlation_id == call.correlation_id
    assert props.callback_url == CALLBACK
    assert props.answered_by is not None and props.answered_by.raw_id == standin.bot_user_id
    sub = props.media_streaming_subscription
    assert sub is not None and sub.state == "active" and sub.subscribed_content_types == ["audio"]
    assert call.media_streaming_options == rec.body["mediaStreamingOptions"]


async def test_async_hang_up_for_everyone_terminates(standin: CallAutomationStandIn) -> None:
    props = await _answer(standin)
    call_id = props.call_connection_id
    assert call_id is not None
    async with _async_client(standin) as client:
        connection = client.get_call_connection(call_id)
        await connection.hang_up(is_for_everyone=True)

        rec = await standin.wait_for("terminate", call_connection_id=call_id)
        assert (rec.method, rec.path) == ("POST", f"/calling/callConnections/{call_id}:terminate")
        assert rec.body is None
        assert standin.calls[call_id].state == "disconnected"
        # An ended call is gone for the REST API.
        with pytest.raises(ResourceNotFoundError):
            await connection.get_call_properties()


async def test_hang_up_own_leg_is_delete(standin: CallAutomationStandIn) -> None:
    props = await _answer(standin)
    call_id = props.call_connection_id
    assert call_id is not None
    async with _async_client(standin) as client:
        await client.get_call_connection(call_id).hang_up(is_for_everyone=False)
    rec = await standin.wait_for("hangup_leg", call_connection_id=call_id)
    assert rec.method == "DELETE"
    assert standin.calls[call_id].state == "disconnected"


async def test_async_transfer_to_phone_number(standin: CallAutomationStandIn) -> None:
    props = await _answer(standin)
    call_id = props.call_connection_id
    assert call_id is not None
    async with _async_client(standin) as client:
        result = await client.get_call_connection(call_id).transfer_call_to_participant(
            PhoneNumberIdentifier("+15551230000"), operation_context="xfer-1"
        )
    assert result.operation_context == "xfer-1"
    rec = await standin.wait_for("transfer", call_connection_id=call_id)
    assert rec.path == f"/calling/callConnections/{call_id}:transferToParticipant"
    assert rec.body == {
        "targetParticipant": {"rawId": "4:+15551230000", "phoneNumber": {"value": "+15551230000"}},
        "operationContext": "xfer-1",
    }
    call = standin.calls[call_id]
    assert call.state == "transferring"
    assert call.transfer_target is not None and call.transfer_target["kind"] == "phoneNumber"


async def test_create_reject_redirect(standin: CallAutomationStandIn) -> None:
    client = _client(standin)
    try:
        props = await asyncio.to_thread(
            client.create_call,
            PhoneNumberIdentifier("+15551230001"),
            CALLBACK,
            source_caller_id_number=PhoneNumberIdentifier("+15550000000"),
        )
        await asyncio.to_thread(client.reject_call, "ctx-r", call_reject_reason="busy")
        await asyncio.to_thread(client.redirect_call, "ctx-d", PhoneNumberIdentifier("+15559999999"))
        # PSTN dial-out without a caller id is refused, as by ACS.
        with pytest.raises(HttpResponseError) as excinfo:
            await asyncio.to_thread(client.create_call, PhoneNumberIdentifier("+15551230002"), CALLBACK)
        assert excinfo.value.status_code == 400
    finally:
        client.close()

    assert props.call_connection_state == "connecting"
    assert [t.raw_id for t in props.targets or []] == ["4:+15551230001"]
    assert props.source_caller_id_number is not None
    assert props.source_caller_id_number.raw_id == "4:+15550000000"
    assert (await standin.wait_for("reject")).body == {
        "incomingCallContext": "ctx-r",
        "callRejectReason": "busy",
    }
    assert (await standin.wait_for("redirect")).body["target"]["rawId"] == "4:+15559999999"


async def test_wrong_key_is_401(standin: CallAutomationStandIn) -> None:
    client = _client(standin, key=CallAutomationStandIn().access_key)
    try:
        with pytest.raises(HttpResponseError) as excinfo:
            await asyncio.to_thread(client.answer_call, "ctx-1", CALLBACK)
    finally:
        client.close()
    assert isinstance(excinfo.value, ClientAuthenticationError)
    assert excinfo.value.status_code == 401
    assert standin.requests == [] and standin.calls == {}
    assert standin.rejected == [("/calling/callConnections:answer", standin.rejected[0][1])]
    assert "signature mismatch" in standin.rejected[0][1]


async def test_tampered_body_is_401(standin: CallAutomationStandIn) -> None:
    def tamper(request: PipelineRequest[Any]) -> None:
        # Runs after the HMAC policy signed the request: same length, different bytes.
        request.http_request.body = request.http_request.body.replace("ctx-AAAA", "ctx-BBBB")

    with pytest.raises(ClientAuthenticationError):
        await _answer(standin, "ctx-AAAA", raw_request_hook=tamper)
    assert standin.requests == []
    assert standin.rejected[0][1] == "x-ms-content-sha256 does not match the body"


async def test_stale_date_is_401(standin: CallAutomationStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = (datetime.now(UTC) - timedelta(minutes=16)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    monkeypatch.setattr(hmac_policy_module, "get_current_utc_time", lambda: stale)
    with pytest.raises(ClientAuthenticationError):
        await _answer(standin)
    assert "old" in standin.rejected[0][1]


async def test_bare_host_endpoint_also_verifies(standin: CallAutomationStandIn) -> None:
    # Without the trailing slash the SDK signs the bare host:port, which is what the Host header says.
    client = CallAutomationClient(standin.endpoint.rstrip("/"), AzureKeyCredential(standin.access_key))
    try:
        props = await asyncio.to_thread(client.answer_call, "ctx-1", CALLBACK)
    finally:
        client.close()
    assert props.call_connection_id in standin.calls


async def test_bearer_token_needs_validator_approval() -> None:
    class FakeTokenCredential:
        def __init__(self, token: str) -> None:
            self.token = token
            self.scopes: list[str] = []

        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            self.scopes.extend(scopes)
            return AccessToken(self.token, int(time.time()) + 3600)

    async with CallAutomationStandIn(token_validator=lambda token: token == "good-token") as stand_in:
        props = await _answer(stand_in)
        for token, accepted in (("good-token", True), ("bad-token", False)):
            credential = FakeTokenCredential(token)
            client = CallAutomationClient(stand_in.endpoint, credential)
            connection = client.get_call_connection(props.call_connection_id or "")
            try:
                # azure-core refuses bearer tokens over http:// unless told otherwise per call.
                if accepted:
                    got = await asyncio.to_thread(connection.get_call_properties, enforce_https=False)
                    assert got.call_connection_id == props.call_connection_id
                else:
                    with pytest.raises(ClientAuthenticationError):
                        await asyncio.to_thread(connection.get_call_properties, enforce_https=False)
            finally:
                client.close()
            assert credential.scopes == ["https://communication.azure.com//.default"]
        assert stand_in.rejected == [
            (
                f"/calling/callConnections/{props.call_connection_id}",
                "bearer token refused by token_validator",
            )
        ]


async def test_fail_next_surfaces_message_once(standin: CallAutomationStandIn) -> None:
    standin.fail_next("answer", 403, "Call was already answered elsewhere")
    with pytest.raises(HttpResponseError) as excinfo:
        await _answer(standin)
    assert excinfo.value.status_code == 403
    assert "Call was already answered elsewhere" in str(excinfo.value)
    assert standin.calls == {}
    props = await _answer(standin)  # only the next one fails
    assert props.call_connection_id in standin.calls


async def test_repeatability_id_replay_has_no_second_effect(standin: CallAutomationStandIn) -> None:
    repeat = {
        "Repeatability-Request-ID": str(uuid.uuid4()),
        "Repeatability-First-Sent": "Sun, 01 Nov 2026 00:00:00 GMT",
    }
    first = await _answer(standin, headers=dict(repeat))
    second = await _answer(standin, headers=dict(repeat))
    assert first.call_connection_id == second.call_connection_id
    assert len(standin.calls) == 1
    assert [r.replayed for r in standin.requests] == [False, True]
    third = await _answer(standin)  # fresh id: a new call
    assert third.call_connection_id != first.call_connection_id


async def test_get_unknown_call_is_404(standin: CallAutomationStandIn) -> None:
    client = _client(standin)
    try:
        with pytest.raises(ResourceNotFoundError) as excinfo:
            await asyncio.to_thread(client.get_call_connection("no-such-call").get_call_properties)
    finally:
        client.close()
    assert excinfo.value.status_code == 404
    assert (await standin.wait_for("get")).call_connection_id == "no-such-call"


async def test_missing_api_version_and_unknown_route(standin: CallAutomationStandIn) -> None:
    async with aiohttp.ClientSession() as session:
        path = "/calling/callConnections:answer"
        body = '{"incomingCallContext": "c", "callbackUri": "https://x/cb"}'
        headers = _sdk_signed_headers(standin, "POST", path, body) | {"Content-Type": "application/json"}
        async with session.post(standin.endpoint.rstrip("/") + path, data=body, headers=headers) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "MissingApiVersionParameter"

        path = "/calling/nowhere?api-version=2026-03-12"
        async with session.get(
            standin.endpoint.rstrip("/") + path, headers=_sdk_signed_headers(standin, "GET", path)
        ) as resp:
            assert resp.status == 404
            assert set((await resp.json())["error"]) == {"code", "message"}
    assert standin.calls == {} and standin.rejected == []


async def test_from_connection_string_forces_https(standin: CallAutomationStandIn) -> None:
    """Why clients are built from endpoint + AzureKeyCredential: the connection-string path drops http://."""
    assert standin.connection_string.startswith("endpoint=http://127.0.0.1:")
    client = CallAutomationClient.from_connection_string(standin.connection_string, retry_total=0)
    try:
        assert client._client._config.endpoint.startswith("https://127.0.0.1:")
        with pytest.raises(ServiceRequestError):  # TLS handshake against a plain-HTTP server
            await asyncio.to_thread(client.answer_call, "ctx-1", CALLBACK)
    finally:
        client.close()
    assert standin.requests == []
