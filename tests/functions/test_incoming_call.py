"""POST /api/incoming-call: handshakes, answering through the real SDK, redelivery, screening, faults."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from functions import runtime
from functions.media_streaming import media_streaming
from tests.conftest import AUDIENCE
from tests.functions.conftest import (
    CALLBACK_HOST,
    CALLER,
    OUR_NUMBER,
    OUR_USER,
    as_cloud_event,
    audit_events,
    body_of,
    incoming_call_event,
    invoke,
)

pytestmark = pytest.mark.usefixtures("control_env")


def answers(acs: CallAutomationStandIn) -> list[dict[str, Any]]:
    return [r.body for r in acs.requests if r.operation == "answer"]


async def test_event_grid_validation_handshake_needs_no_settings(clean_env: pytest.MonkeyPatch) -> None:
    validation = [
        {
            "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
            "topic": "/subscriptions/x",
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-11-22T01:00:00Z",
            "metadataVersion": "1",
            "dataVersion": "1",
            "data": {
                "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                "validationUrl": "https://rp-westeurope.eventgrid.azure.net:553/validate?token=x",
            },
        }
    ]
    response = await invoke(
        "incoming_call", json_body=validation, headers={"aeg-event-type": "SubscriptionValidation"}
    )
    assert response.status_code == 200
    assert body_of(response) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


async def test_cloudevents_options_handshake() -> None:
    response = await invoke(
        "incoming_call", method="OPTIONS", headers={"WebHook-Request-Origin": "eventgrid.azure.net"}
    )
    assert response.status_code == 200
    assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert response.headers["Allow"] == "POST"

    refused = await invoke("incoming_call", method="OPTIONS")
    assert refused.status_code == 400
    assert "WebHook-Request-Origin" in body_of(refused)["error"]


async def test_batch_answers_each_incoming_call_with_bidirectional_media(acs: CallAutomationStandIn) -> None:
    first, second = incoming_call_event(context="ctx-1"), incoming_call_event(context="ctx-2")
    unrelated = {
        "id": "x",
        "eventType": "Microsoft.Communication.CallStarted",
        "eventTime": "2026-11-22T01:00:00Z",
        "data": {},
    }
    response = await invoke("incoming_call", json_body=[first, unrelated, second])

    assert response.status_code == 200
    assert body_of(response) == {"answered": 2, "rejected": 0, "ignored": 0, "duplicate": 0, "failed": 0}
    sent = sorted(answers(acs), key=lambda body: str(body["incomingCallContext"]))
    assert [body["incomingCallContext"] for body in sent] == ["ctx-1", "ctx-2"]
    for body, event in zip(sent, (first, second), strict=True):
        # the caller rides along for both planes' telemetry, masked: ACS's callbacks do not carry it
        assert body["callbackUri"] == f"{CALLBACK_HOST}/api/callbacks?caller=%2B81%2A%2A%2A%2A%2A%2A5678"
        assert body["operationContext"] == "inbound-call"
        server_call_id = event["data"]["serverCallId"]  # so every media record carries it too
        assert body["mediaStreamingOptions"] == {
            "transportUrl": "wss://media.example/ws/media?caller=%2B81%2A%2A%2A%2A%2A%2A5678"
            f"&server_call_id={server_call_id}",
            "transportType": "websocket",
            "contentType": "audio",
            "audioChannelType": "mixed",
            "startMediaStreaming": True,
            "enableBidirectional": True,
            "audioFormat": "pcm24KMono",
            "enableDtmfTones": True,  # keys go to the model
        }
    assert len(acs.calls) == 2 and not acs.rejected  # every request passed the HMAC check


@pytest.mark.parametrize("batched", [False, True])
async def test_cloudevents_schema_is_accepted(acs: CallAutomationStandIn, batched: bool) -> None:
    event = as_cloud_event(incoming_call_event(context="ctx-ce"))
    response = await invoke("incoming_call", json_body=[event] if batched else event)
    assert response.status_code == 200
    assert [body["incomingCallContext"] for body in answers(acs)] == ["ctx-ce"]


async def test_profile_and_16k_format_reach_the_transport_url(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.setenv("AOAI_INBOUND_PROFILE", "restaurant")
    control_env.setenv("MEDIA_AUDIO_FORMAT", "pcm16KMono")
    control_env.setenv("MEDIA_HOST_URL", "https://media.example/")  # as copied from the Container App
    assert (await invoke("incoming_call", json_body=[incoming_call_event()])).status_code == 200

    options = answers(acs)[0]["mediaStreamingOptions"]
    assert isinstance(options, dict)
    assert options["transportUrl"].startswith(
        "wss://media.example/ws/media?profile=restaurant&caller=%2B81%2A%2A%2A%2A%2A%2A5678&server_call_id="
    )
    assert options["audioFormat"] == "pcm16KMono"


def with_custom_context(context: Any) -> dict[str, Any]:
    event = incoming_call_event()
    return {**event, "data": {**event["data"], "customContext": context}}


def transport_query(acs: CallAutomationStandIn) -> dict[str, list[str]]:
    (answer,) = answers(acs)
    return parse_qs(urlsplit(answer["mediaStreamingOptions"]["transportUrl"]).query)


CHOICE = {"X-MS-Custom-Profile": "restaurant", "X-MS-Custom-Voice": "coral"}


@pytest.mark.parametrize(
    "context",
    [
        {"sipHeaders": CHOICE},
        {"voipHeaders": {"x-ms-custom-profile": "restaurant", "X-MS-CUSTOM-VOICE": "coral"}},
        {"sipHeaders": {"X-MS-Custom-Profile": "restaurant"}, "voipHeaders": {"X-MS-Custom-Voice": "coral"}},
    ],
)
async def test_callers_choose_profile_and_voice_when_allowed(
    acs: CallAutomationStandIn,
    control_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    context: Any,
) -> None:
    caplog.set_level(logging.INFO)
    control_env.setenv("CALLER_CHOOSES_PROFILE", "true")
    assert (await invoke("incoming_call", json_body=[with_custom_context(context)])).status_code == 200

    query = transport_query(acs)
    assert (query["profile"], query["voice"]) == (["restaurant"], ["coral"])
    (answered,) = audit_events(caplog, "CallAnswered")
    assert (answered["profile"], answered["voice"]) == ("restaurant", "coral")


async def test_callers_choice_is_ignored_by_default(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.setenv("AOAI_INBOUND_PROFILE", "restaurant")
    event = with_custom_context({"sipHeaders": {"X-MS-Custom-Profile": "nope", "X-MS-Custom-Voice": "coral"}})
    assert (await invoke("incoming_call", json_body=[event])).status_code == 200
    query = transport_query(acs)
    assert query["profile"] == ["restaurant"] and "voice" not in query  # the deployment's, not the caller's


@pytest.mark.parametrize(
    ("context", "ignored"),
    [
        (
            {"sipHeaders": {"X-MS-Custom-Profile": "pizzeria", "X-MS-Custom-Voice": "nova"}},
            ["Profile", "Voice"],
        ),
        (
            {"sipHeaders": {"X-MS-Custom-Profile": "../prompts/restaurant", "X-MS-Custom-Voice": 7}},
            ["Profile"],
        ),
        ({"sipHeaders": {"X-MS-Custom-Profile": "p" * 600}}, []),  # over-long: as if not sent
        ({"sipHeaders": ["X-MS-Custom-Profile", "restaurant"]}, []),
        ("restaurant", []),
        (None, []),
    ],
)
async def test_a_bad_choice_falls_back_and_never_fails_the_call(
    acs: CallAutomationStandIn,
    control_env: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    context: Any,
    ignored: list[str],
) -> None:
    control_env.setenv("CALLER_CHOOSES_PROFILE", "true")
    control_env.setenv("AOAI_INBOUND_PROFILE", "restaurant")
    response = await invoke("incoming_call", json_body=[with_custom_context(context)])

    assert body_of(response)["answered"] == 1
    query = transport_query(acs)
    assert query["profile"] == ["restaurant"] and "voice" not in query
    warnings = [r.getMessage() for r in caplog.records if "ignoring the caller's" in r.getMessage()]
    assert [w.split(":")[0].removeprefix("ignoring the caller's X-MS-Custom-") for w in warnings] == ignored


async def test_redelivery_to_the_same_instance_is_skipped(acs: CallAutomationStandIn) -> None:
    event = incoming_call_event()
    first = await invoke("incoming_call", json_body=[event])
    again = await invoke("incoming_call", json_body=[event])

    assert first.status_code == again.status_code == 200
    assert body_of(again)["duplicate"] == 1
    assert len(answers(acs)) == 1


async def test_redelivery_to_another_instance_is_deduped_by_acs(acs: CallAutomationStandIn) -> None:
    event = incoming_call_event()
    assert (await invoke("incoming_call", json_body=[event])).status_code == 200
    await runtime.reset()  # a second instance: empty cache, its own client
    assert (await invoke("incoming_call", json_body=[event])).status_code == 200

    first, second = (r for r in acs.requests if r.operation == "answer")
    request_id = first.headers["Repeatability-Request-ID"]
    assert second.headers["Repeatability-Request-ID"] == request_id
    assert second.headers["Repeatability-First-Sent"] == first.headers["Repeatability-First-Sent"]
    assert first.headers["Repeatability-First-Sent"] == "Thu, 02 Jan 2025 03:04:05 GMT"  # the event's time
    assert second.replayed and len(acs.calls) == 1  # ACS answered once


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "body is not valid JSON"),
        (b"", "body is empty"),
        (b"[]", "empty array"),
        (b"[1]", "[0] is a number, not an object"),
        (
            b'[{"data": {}}]',
            "event[0] has neither eventType (Event Grid schema) nor type (CloudEvents schema)",
        ),
    ],
)
async def test_malformed_deliveries_get_400(acs: CallAutomationStandIn, body: bytes, message: str) -> None:
    response = await invoke("incoming_call", body=body)
    assert response.status_code == 400
    assert message in body_of(response)["error"]
    assert acs.requests == []


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("incomingCallContext", "event[1].data.incomingCallContext must be a non-empty string"),
        ("to", "event[1].data.to must be a communication identifier object"),
        ("from", "event[1].data.from must be a communication identifier object"),
    ],
)
async def test_missing_fields_fail_the_whole_batch(
    acs: CallAutomationStandIn, field: str, message: str
) -> None:
    broken = incoming_call_event()
    del broken["data"][field]
    response = await invoke("incoming_call", json_body=[incoming_call_event(), broken])
    assert response.status_code == 400
    assert body_of(response)["error"] == message
    assert acs.requests == []  # nothing half-done


@pytest.mark.parametrize(
    "to",
    [
        "+14255550199",  # a number of the resource that is not ours (ACS_PHONE_NUMBER is)
        f"8:acs:{'1' * 8}-2222-3333-4444-{'5' * 12}_someone",  # a user of another resource
    ],
)
async def test_calls_to_other_identities_are_ignored(
    acs: CallAutomationStandIn, caplog: pytest.LogCaptureFixture, to: str
) -> None:
    caplog.set_level(logging.INFO)
    response = await invoke("incoming_call", json_body=[incoming_call_event(to=to)])
    assert response.status_code == 200
    assert body_of(response)["ignored"] == 1
    assert acs.requests == []
    assert "not one of our numbers or users" in caplog.text


async def test_our_acs_users_and_inbound_numbers_are_answered(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.setenv("ACS_INBOUND_NUMBERS", f"{OUR_NUMBER}, +14255550111")
    events = [
        incoming_call_event(to=OUR_USER),
        incoming_call_event(to="+14255550111"),
        incoming_call_event(to=OUR_USER.replace(AUDIENCE, AUDIENCE.upper())),
    ]
    response = await invoke("incoming_call", json_body=events)
    assert body_of(response)["answered"] == 3


async def test_without_configured_numbers_any_number_of_the_resource_is_ours(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.delenv("ACS_PHONE_NUMBER")
    response = await invoke("incoming_call", json_body=[incoming_call_event(to="+14255550199")])
    assert body_of(response)["answered"] == 1


async def test_deny_list_rejects_with_forbidden_and_masks_the_number(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    control_env.setenv("CALLER_DENY_LIST", f"+4930*, {CALLER}")
    response = await invoke("incoming_call", json_body=[incoming_call_event(context="ctx-denied")])

    assert response.status_code == 200
    assert body_of(response)["rejected"] == 1
    reject = await acs.wait_for("reject")
    assert reject.body == {"incomingCallContext": "ctx-denied", "callRejectReason": "forbidden"}
    assert answers(acs) == []
    assert "caller +81******5678 is on CALLER_DENY_LIST" in caplog.text
    assert CALLER not in caplog.text and CALLER[1:] not in caplog.text


async def test_allow_list_lets_only_listed_callers_through(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    control_env.setenv("CALLER_ALLOW_LIST", "+8190*")
    stranger = "+4930123456789"
    response = await invoke(
        "incoming_call",
        json_body=[incoming_call_event(context="friend"), incoming_call_event(caller=stranger, context="x")],
    )
    assert body_of(response) == {"answered": 1, "rejected": 1, "ignored": 0, "duplicate": 0, "failed": 0}
    assert [body["incomingCallContext"] for body in answers(acs)] == ["friend"]
    assert "caller +49*******6789 is not on CALLER_ALLOW_LIST" in caplog.text


async def test_acs_4xx_is_logged_and_not_retried(
    acs: CallAutomationStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    acs.fail_next("answer", 400, f"Invalid incoming call context for {CALLER}", code="8523")
    event = incoming_call_event()
    response = await invoke("incoming_call", json_body=[event])

    assert response.status_code == 200  # Event Grid must not retry: it would fail the same way
    assert body_of(response)["failed"] == 1
    assert "HTTP 400 (8523): Invalid incoming call context for +81******5678" in caplog.text
    assert CALLER not in caplog.text
    assert body_of(await invoke("incoming_call", json_body=[event]))["duplicate"] == 1


async def test_acs_5xx_asks_event_grid_to_retry_and_the_retry_answers(acs: CallAutomationStandIn) -> None:
    # azure-core retries 5xx itself; the stand-in fails every attempt of this invocation.
    acs.fail_next("answer", 503, "Service busy", times=runtime.ACS_ATTEMPTS)
    event = incoming_call_event()
    response = await invoke("incoming_call", json_body=[event])

    assert response.status_code == 503
    assert "retry" in body_of(response)["error"]
    assert len(answers(acs)) == runtime.ACS_ATTEMPTS

    retried = await invoke("incoming_call", json_body=[event])  # Event Grid's redelivery
    assert body_of(retried)["answered"] == 1
    assert len(acs.calls) == 1


async def test_an_unexpected_error_asks_event_grid_to_retry_and_the_retry_answers(
    acs: CallAutomationStandIn, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def broken_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return media_streaming(*args, **kwargs)

    monkeypatch.setattr("functions.incoming_call.media_streaming", broken_once)
    caplog.set_level(logging.INFO)
    event = incoming_call_event()
    response = await invoke("incoming_call", json_body=[event])

    assert response.status_code == 503  # not 500: Event Grid redelivers either way, but this says why
    assert "retry" in body_of(response)["error"]
    (logged,) = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert logged.exc_info is not None  # the traceback is in the log
    (failed,) = audit_events(caplog, "IncomingCallFailed")
    assert (failed["transient"], failed["error"]) == ("true", "RuntimeError")

    retried = await invoke("incoming_call", json_body=[event])  # Event Grid's redelivery
    assert body_of(retried)["answered"] == 1  # not taken for a duplicate
    assert len(answers(acs)) == 1


async def test_acs_unreachable_is_503(acs: CallAutomationStandIn) -> None:
    await acs.close()
    response = await invoke("incoming_call", json_body=[incoming_call_event()])
    assert response.status_code == 503


async def test_bad_settings_answer_503_naming_them(
    control_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    control_env.delenv("MEDIA_HOST_URL")
    control_env.setenv("CALLBACK_URI_HOST", "functions.example")
    response = await invoke("incoming_call", json_body=[incoming_call_event()])

    assert response.status_code == 503
    error = body_of(response)["error"]
    assert "CALLBACK_URI_HOST" in error and "MEDIA_HOST_URL" in error
    assert "control plane settings are invalid" in caplog.text
    assert "MEDIA_HOST_URL is required but not set" in caplog.text
    assert "CALLBACK_URI_HOST must be a URL starting with https://" in caplog.text


async def test_transport_url_keeps_the_media_host_path(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.setenv("MEDIA_HOST_URL", "wss://gateway.example/voice/?tenant=a")
    await invoke("incoming_call", json_body=[incoming_call_event()])
    options = answers(acs)[0]["mediaStreamingOptions"]
    assert isinstance(options, dict)
    url = urlsplit(str(options["transportUrl"]))
    assert url.path == "/voice/ws/media"
    assert parse_qs(url.query)["tenant"] == ["a"]  # the operator's own query is kept
