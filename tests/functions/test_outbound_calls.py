"""POST /api/calls: outbound calls through the real SDK, strict input, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from tests.conftest import AUDIENCE
from tests.functions.conftest import CALLBACK_HOST, OUR_NUMBER, OUR_USER, audit_events, body_of, invoke

CALLEE = "+4930123456789"


@pytest.fixture(autouse=True)
def callee_allowed(control_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    control_env.setenv("OUTBOUND_ALLOW_LIST", CALLEE)
    return control_env


async def test_pstn_call_uses_our_caller_id_and_streams_media(
    acs: CallAutomationStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await invoke("start_call", json_body={"target": CALLEE, "profile": "restaurant"})

    assert response.status_code == 202
    created = await acs.wait_for("create")
    assert body_of(response) == {"callConnectionId": next(iter(acs.calls)), "target": "+49*******6789"}
    assert created.body["targets"] == [{"rawId": f"4:{CALLEE}", "phoneNumber": {"value": CALLEE}}]
    assert created.body["sourceCallerIdNumber"] == {"value": OUR_NUMBER}  # PhoneNumberIdentifierModel
    assert (
        created.body["callbackUri"] == f"{CALLBACK_HOST}/api/callbacks?caller=%2B49%2A%2A%2A%2A%2A%2A%2A6789"
    )
    assert created.body["operationContext"] == "outbound-call"
    assert created.body["mediaStreamingOptions"] == {
        "transportUrl": "wss://media.example/ws/media?profile=restaurant&caller=%2B49%2A%2A%2A%2A%2A%2A%2A6789",
        "transportType": "websocket",
        "contentType": "audio",
        "audioChannelType": "mixed",
        "startMediaStreaming": True,
        "enableBidirectional": True,
        "audioFormat": "pcm24KMono",
        "enableDtmfTones": True,  # keys go to the model
    }
    assert "calling +49*******6789" in caplog.text and CALLEE not in caplog.text


async def test_call_to_an_acs_user_needs_no_caller_id(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.delenv("ACS_PHONE_NUMBER")
    response = await invoke("start_call", json_body={"target": OUR_USER})

    assert response.status_code == 202
    assert body_of(response)["target"] == OUR_USER
    created = await acs.wait_for("create")
    assert created.body["targets"][0]["communicationUser"] == {"id": OUR_USER}
    assert "sourceCallerIdNumber" not in created.body
    url = urlsplit(created.body["mediaStreamingOptions"]["transportUrl"])
    assert (url.path, parse_qs(url.query)) == (
        "/ws/media",
        {"caller": [OUR_USER]},
    )  # an ACS id is not a number


async def test_pstn_without_acs_phone_number_is_409(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.delenv("ACS_PHONE_NUMBER")
    response = await invoke("start_call", json_body={"target": CALLEE})
    assert response.status_code == 409
    assert "ACS_PHONE_NUMBER" in body_of(response)["error"]
    assert acs.requests == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"target": "12345"}', "target must be an E.164 number"),
        (b'{"target": "+0123"}', "target must be an E.164 number"),
        (b'{"target": "8:teams:x"}', "target must be an E.164 number"),
        (b'{"target": 14255550100}', "target must be an E.164 number"),
        (b"{}", "target is required"),
        (b"call +14255550100 please", "body is not valid JSON"),
        (b'["+14255550100"]', "body must be a JSON object"),
        (
            b'{"target": "+14255550100", "from": "+1"}',
            "unknown field(s): from; allowed: target, profile, voice",
        ),
        (b'{"target": "+14255550100", "profile": 7}', "profile must be a string"),
        (b'{"target": "+14255550100", "voice": ["coral"]}', "voice must be a string"),
    ],
)
async def test_bad_input_is_400_and_sends_nothing(
    acs: CallAutomationStandIn, body: bytes, message: str
) -> None:
    response = await invoke("start_call", body=body)
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert message in error
    assert "12345" not in error.replace("+14255550100", "")  # submitted values are not echoed
    assert acs.requests == []


@pytest.mark.parametrize("profile", ["pizzeria", "../prompts/restaurant", "Restaurant"])
async def test_unknown_profile_lists_the_available_ones(acs: CallAutomationStandIn, profile: str) -> None:
    response = await invoke("start_call", json_body={"target": CALLEE, "profile": profile})
    assert response.status_code == 400
    assert "available profiles: restaurant" in body_of(response)["error"]
    assert acs.requests == []


async def test_voice_rides_in_the_transport_url_next_to_the_profile(
    acs: CallAutomationStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await invoke(
        "start_call", json_body={"target": OUR_USER, "profile": "restaurant", "voice": "coral"}
    )

    assert response.status_code == 202
    url = urlsplit((await acs.wait_for("create")).body["mediaStreamingOptions"]["transportUrl"])
    assert parse_qs(url.query) == {"profile": ["restaurant"], "voice": ["coral"], "caller": [OUR_USER]}
    (placed,) = audit_events(caplog, "OutboundCallPlaced")
    assert (placed["profile"], placed["voice"]) == ("restaurant", "coral")


@pytest.mark.parametrize("voice", ["Coral", "nova", "", "coral ", "x" * 10_000])
async def test_unknown_voice_is_400_listing_the_voices(acs: CallAutomationStandIn, voice: str) -> None:
    response = await invoke("start_call", json_body={"target": CALLEE, "voice": voice})
    assert response.status_code == 400
    assert body_of(response)["error"] == (
        "voice must be one of: alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar"
    )
    assert acs.requests == []


async def test_profiles_come_from_aoai_profiles_dir(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "dentist.txt").write_text("You book dental appointments.", encoding="utf-8")
    control_env.setenv("AOAI_PROFILES_DIR", str(tmp_path))
    ok = await invoke("start_call", json_body={"target": CALLEE, "profile": "dentist"})
    refused = await invoke("start_call", json_body={"target": CALLEE, "profile": "restaurant"})

    assert ok.status_code == 202
    assert refused.status_code == 400
    assert body_of(refused)["error"] == "unknown profile 'restaurant'; available profiles: dentist"


async def test_acs_refusal_is_502_with_its_message(acs: CallAutomationStandIn) -> None:
    acs.fail_next("create", 403, "Source caller id is not owned by this resource", code="7507")
    response = await invoke("start_call", json_body={"target": CALLEE})
    assert response.status_code == 502
    assert body_of(response)["error"] == (
        "ACS refused the call: HTTP 403 (7507): Source caller id is not owned by this resource"
    )


async def test_acs_unreachable_is_503(acs: CallAutomationStandIn) -> None:
    await acs.close()
    response = await invoke("start_call", json_body={"target": CALLEE})
    assert response.status_code == 503
    assert "ACS is unavailable" in body_of(response)["error"]


async def test_bad_settings_answer_503_naming_them(control_env: pytest.MonkeyPatch) -> None:
    control_env.delenv("AZURE_COMMUNICATION_CONNECTION_STRING")
    control_env.setenv("ACS_RESOURCE_ID", AUDIENCE)
    response = await invoke("start_call", json_body={"target": CALLEE})
    assert response.status_code == 503
    assert "ACS_ENDPOINT, AZURE_COMMUNICATION_CONNECTION_STRING" in body_of(response)["error"]


# --- toll fraud: who may be called, and how often -------------------------------------------------


@pytest.mark.parametrize("target", ["+4930999999", "+14255550123"])  # by prefix, by number
async def test_numbers_on_the_allow_list_are_called(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, target: str
) -> None:
    control_env.setenv("OUTBOUND_ALLOW_LIST", "+4930*, +14255550123")
    response = await invoke("start_call", json_body={"target": target})
    assert response.status_code == 202


@pytest.mark.parametrize("target", ["+142555501234", "+819012345678"])  # a number is not a prefix
async def test_numbers_off_the_allow_list_get_403_and_are_audited(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, target: str
) -> None:
    caplog.set_level(logging.INFO)
    control_env.setenv("OUTBOUND_ALLOW_LIST", "+4930*, +14255550123")
    response = await invoke("start_call", json_body={"target": target})

    assert response.status_code == 403
    error = body_of(response)["error"]
    assert error.endswith("is not on OUTBOUND_ALLOW_LIST")
    assert target not in error and target[:3] in error  # masked, never the whole number
    assert acs.requests == []
    (refused,) = audit_events(caplog, "OutboundCallRefused")
    assert refused["reason"] == "not_on_allow_list"
    assert refused["target"] != target and refused["target"].startswith(target[:3])
    assert target not in caplog.text


async def test_without_an_allow_list_no_phone_number_is_called_but_acs_users_are(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    control_env.delenv("OUTBOUND_ALLOW_LIST")
    refused = await invoke("start_call", json_body={"target": CALLEE})
    assert refused.status_code == 403
    assert "calling phone numbers is off: OUTBOUND_ALLOW_LIST is empty" in body_of(refused)["error"]
    assert acs.requests == []

    user = await invoke("start_call", json_body={"target": OUR_USER})
    assert user.status_code == 202


async def test_calls_beyond_the_rate_limit_get_429_with_retry_after(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    control_env.setenv("OUTBOUND_CALLS_PER_MINUTE", "2")
    refused = await invoke("start_call", json_body={"target": "+819012345678"})  # 403s cost no budget
    placed = [await invoke("start_call", json_body={"target": target}) for target in (CALLEE, OUR_USER)]
    limited = await invoke("start_call", json_body={"target": CALLEE})

    assert refused.status_code == 403
    assert [r.status_code for r in placed] == [202, 202]
    assert limited.status_code == 429
    assert 55 <= int(limited.headers["Retry-After"]) <= 60
    assert "at most 2 per minute (OUTBOUND_CALLS_PER_MINUTE)" in body_of(limited)["error"]
    assert len([r for r in acs.requests if r.operation == "create"]) == 2
    assert [e["reason"] for e in audit_events(caplog, "OutboundCallRefused")] == [
        "not_on_allow_list",
        "rate_limited",
    ]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OUTBOUND_ALLOW_LIST", "+8150"),
        ("OUTBOUND_ALLOW_LIST", "+14255550100,4930"),
        ("OUTBOUND_CALLS_PER_MINUTE", "0"),
    ],
)
async def test_bad_outbound_settings_answer_503_naming_them(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    control_env.setenv(name, value)
    response = await invoke("start_call", json_body={"target": CALLEE})
    assert response.status_code == 503
    assert name in body_of(response)["error"]
    assert acs.requests == []
