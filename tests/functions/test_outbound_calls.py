"""POST /api/calls: outbound calls through the real SDK, strict input, clear errors."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from tests.conftest import AUDIENCE
from tests.functions.conftest import CALLBACK_HOST, OUR_NUMBER, OUR_USER, body_of, invoke

pytestmark = pytest.mark.usefixtures("control_env")

CALLEE = "+4930123456789"


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
    assert created.body["callbackUri"] == f"{CALLBACK_HOST}/api/callbacks"
    assert created.body["operationContext"] == "outbound-call"
    assert created.body["mediaStreamingOptions"] == {
        "transportUrl": "wss://media.example/ws/media?profile=restaurant&caller=%2B49%2A%2A%2A%2A%2A%2A%2A6789",
        "transportType": "websocket",
        "contentType": "audio",
        "audioChannelType": "mixed",
        "startMediaStreaming": True,
        "enableBidirectional": True,
        "audioFormat": "pcm24KMono",
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
        (b'{"target": "+14255550100", "from": "+1"}', "unknown field(s): from; allowed: target, profile"),
        (b'{"target": "+14255550100", "profile": 7}', "profile must be a string"),
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
