"""POST /api/callbacks: the ACS JWT is checked first, events are parsed strictly, failures hang up."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer
from functions import callbacks
from tests.conftest import AUDIENCE
from tests.functions.conftest import body_of, callback_event, incoming_call_event, invoke

pytestmark = pytest.mark.usefixtures("control_env")


def bearer(signer: AcsTokenIssuer, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {signer.sign(**{'audience': AUDIENCE, **claims})}"}


def streaming_failed(call_connection_id: str, sub_code: int = 8581) -> dict[str, Any]:
    return callback_event(
        "MediaStreamingFailed",
        call_connection_id,
        resultInformation={"code": 500, "subCode": sub_code, "message": "Invalid stream URL."},
        mediaStreamingUpdate={
            "contentType": "Audio",
            "mediaStreamingStatus": "mediaStreamingFailed",
            "mediaStreamingStatusDetails": "streamConnectionUnsuccessful",
        },
    )


async def answered_call(acs: CallAutomationStandIn) -> str:
    """A call answered through /api/incoming-call, as ACS would know it."""
    await invoke("incoming_call", json_body=[incoming_call_event()])
    (call_connection_id,) = acs.calls
    return call_connection_id


async def test_media_streaming_failure_hangs_up_and_explains(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    call_connection_id = await answered_call(acs)
    response = await invoke(
        "callbacks", json_body=[streaming_failed(call_connection_id)], headers=bearer(issuer)
    )

    assert response.status_code == 200
    terminate = await acs.wait_for("terminate", call_connection_id=call_connection_id)
    assert terminate.path == f"/calling/callConnections/{call_connection_id}:terminate"
    assert acs.calls[call_connection_id].state == "disconnected"
    assert "code=500 subCode=8581" in caplog.text
    assert "the media host is unreachable" in caplog.text
    assert "MEDIA_HOST_URL is a public wss:// URL" in caplog.text
    assert f"hung up call {call_connection_id} for everyone" in caplog.text


async def test_failure_on_a_call_that_already_ended_is_fine(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await invoke("callbacks", json_body=streaming_failed("gone"), headers=bearer(issuer))
    assert response.status_code == 200
    assert "call gone had already ended" in caplog.text


@pytest.fixture
async def silent_acs(control_env: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """An ACS endpoint that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = base64.b64encode(secrets.token_bytes(64)).decode()
    control_env.setenv(
        "AZURE_COMMUNICATION_CONNECTION_STRING", f"endpoint=http://127.0.0.1:{port}/;accesskey={key}"
    )
    yield
    server.close()


@pytest.mark.usefixtures("silent_acs")
async def test_hang_up_is_bounded_so_the_callback_answers_fast(
    issuer: AcsTokenIssuer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(callbacks, "HANG_UP_TIMEOUT_SECONDS", 0.3)
    started = time.monotonic()
    response = await invoke("callbacks", json_body=[streaming_failed("stuck")], headers=bearer(issuer))
    assert response.status_code == 200
    assert time.monotonic() - started < 2
    assert "could not hang up call stuck: no answer from ACS within 0.3s" in caplog.text


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ({}, "missing"),
        ({"lifetime_seconds": -600}, "expired"),
        (
            {"audience": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Communication/x"},
            "bad_audience",
        ),
        ({"issuer": "https://someone-else.example"}, "bad_issuer"),
    ],
)
async def test_callbacks_without_a_valid_acs_jwt_are_refused(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, token: dict[str, Any], reason: str
) -> None:
    headers = bearer(issuer, **token) if token else {}
    response = await invoke("callbacks", json_body=[streaming_failed("call-1")], headers=headers)

    assert response.status_code == 401
    assert body_of(response)["error"].startswith(f"ACS token rejected ({reason}): ")
    assert acs.requests == []  # nothing acted on


async def test_a_refusal_does_not_reveal_the_expected_audience_or_issuer(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer
) -> None:
    # A prober must not learn which ACS resource (or issuer) this deployment trusts.
    for claims in ({"audience": "00000000-0000-0000-0000-000000000000"}, {"issuer": "https://x.example"}):
        response = await invoke(
            "callbacks", json_body=[streaming_failed("c")], headers=bearer(issuer, **claims)
        )
        assert response.status_code == 401
        text = response.get_body().decode()
        assert AUDIENCE not in text
        assert issuer.issuer not in text
    assert acs.requests == []


async def test_forged_signature_is_refused(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, foreign_key: Any
) -> None:
    response = await invoke(
        "callbacks", json_body=[streaming_failed("call-1")], headers=bearer(issuer, key=foreign_key)
    )
    assert response.status_code == 401
    assert "bad_signature" in body_of(response)["error"]
    assert acs.requests == []


async def test_unreachable_signing_keys_fail_closed_with_503(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, control_env: pytest.MonkeyPatch
) -> None:
    control_env.setenv(
        "ACS_OPENID_CONFIG_URL", "http://127.0.0.1:9/calling/.well-known/acsopenidconfiguration"
    )
    response = await invoke("callbacks", json_body=[streaming_failed("call-1")], headers=bearer(issuer))
    assert response.status_code == 503
    assert "cannot verify ACS tokens right now" in body_of(response)["error"]
    assert acs.requests == []


async def test_lifecycle_events_are_logged(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    events = [
        callback_event("CallConnected", "c1", operationContext="inbound-call"),
        callback_event("MediaStreamingStarted", "c1", mediaStreamingUpdate={"mediaStreamingStatus": "x"}),
        callback_event(
            "ParticipantsUpdated",
            "c1",
            sequenceNumber=3,
            participants=[
                {"identifier": {"rawId": "4:+819012345678", "phoneNumber": {"value": "+819012345678"}}},
                {"identifier": {"rawId": f"8:acs:{AUDIENCE}_bot"}},
            ],
        ),
        callback_event(
            "CallTransferAccepted",
            "c1",
            transferTarget={
                "kind": "phoneNumber",
                "rawId": "4:+14255550123",
                "phoneNumber": {"value": "+14255550123"},
            },
        ),
        callback_event(
            "CallTransferFailed", "c1", resultInformation={"code": 500, "subCode": 7000, "message": "no"}
        ),
        callback_event("CallDisconnected", "c1"),
        callback_event(
            "AnswerFailed", "c2", resultInformation={"code": 400, "subCode": 8523, "message": "bad"}
        ),
        callback_event("PlayCompleted", "c1"),
    ]
    response = await invoke("callbacks", json_body=events, headers=bearer(issuer))

    assert response.status_code == 200
    assert body_of(response) == {"received": len(events)}
    levels = {record.getMessage().split(" ")[0]: record.levelname for record in caplog.records}
    assert levels["CallConnected"] == "INFO"
    assert levels["ParticipantsUpdated"] == "INFO"
    assert levels["CallTransferFailed"] == "ERROR"
    assert levels["AnswerFailed"] == "ERROR"
    assert (
        "ParticipantsUpdated (correlation_id=corr-1, call_connection_id=c1): 2 participant(s)" in caplog.text
    )
    assert "transferred to +14*****0123" in caplog.text
    assert "ignoring callback PlayCompleted" in caplog.text
    assert "+819012345678" not in caplog.text and "+14255550123" not in caplog.text
    assert acs.requests == []


async def test_unknown_types_and_single_objects_are_accepted(issuer: AcsTokenIssuer) -> None:
    event = callback_event("SomethingNew", "c1", whatever=[1, 2])
    response = await invoke("callbacks", json_body=event, headers=bearer(issuer))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "body is not valid JSON"),
        (b'"text"', "body is a string, not an object"),
        (b'[{"type": "Microsoft.Communication.CallConnected", "data": {}}, 3]', "[1] is a number"),
        (
            json.dumps([{"data": {"callConnectionId": "c1"}}]).encode(),
            "event[0].type must be a non-empty string",
        ),
        (
            json.dumps([{"type": "Microsoft.Communication.CallConnected"}]).encode(),
            "event[0].data must be an object",
        ),
        (
            json.dumps(
                [{"type": "Microsoft.Communication.CallConnected", "data": {"serverCallId": "s"}}]
            ).encode(),
            "event[0].data.callConnectionId must be a non-empty string",
        ),
    ],
)
async def test_malformed_callbacks_get_400(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, body: bytes, message: str
) -> None:
    response = await invoke("callbacks", body=body, headers=bearer(issuer))
    assert response.status_code == 400
    assert message in body_of(response)["error"]
    assert acs.requests == []


async def test_without_acs_resource_id_callbacks_answer_503(control_env: pytest.MonkeyPatch) -> None:
    control_env.delenv("ACS_RESOURCE_ID")
    response = await invoke("callbacks", json_body=[callback_event("CallConnected", "c1")])
    assert response.status_code == 503
    assert "ACS_RESOURCE_ID" in body_of(response)["error"]


@pytest.mark.parametrize(
    ("given", "recorded"),
    [("+81******5678", "+81******5678"), ("8:acs:res_user-1", "8:acs:res_user-1"), ("<script>", None)],
)
async def test_a_callback_record_carries_the_caller_from_its_url_and_acs_server_call_id(
    given: str, recorded: str | None, issuer: AcsTokenIssuer, caplog: pytest.LogCaptureFixture
) -> None:
    """ACS's events name no caller: answer_call/create_call put it (as telemetry may show it) in the
    callback URL, so the call's callback records carry every dimension its other records do."""
    caplog.set_level(logging.INFO, logger="audit")
    event = callback_event("CallConnected", "c1", serverCallId="aHR0cHM6Ly9zZXJ2ZXI")
    response = await invoke("callbacks", json_body=[event], headers=bearer(issuer), params={"caller": given})

    assert response.status_code == 200
    (received,) = [
        json.loads(r.getMessage()) for r in caplog.records if '"CallbackReceived"' in r.getMessage()
    ]
    assert received["server_call_id"] == "aHR0cHM6Ly9zZXJ2ZXI"
    assert received.get("caller") == recorded  # anything else is left out, not recorded
