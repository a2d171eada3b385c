"""The small pieces on their own: masking, screening, redelivery memory, payload translation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from common.phone import mask_phone, mask_phone_numbers
from functions.call_events import (
    CallEvent,
    MediaStreamingEvent,
    ParticipantsUpdated,
    explain_media_failure,
    parse_callback,
)
from functions.dedupe import RecentKeys
from functions.event_grid import IncomingCall, OtherEvent, parse_delivery
from functions.identifiers import Identifier, parse_identifier
from functions.media_streaming import transport_url
from functions.payload import PayloadError
from functions.rate_limit import SlidingWindow
from functions.screening import parse_number_list, screen
from functions.settings import ControlSettings
from tests.conftest import AUDIENCE
from tests.functions.conftest import as_cloud_event, callback_event, incoming_call_event


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+819012345678", "+81******5678"),
        ("+14255550100", "+14*****0100"),
        ("+4930123", "+49*0123"),
        ("+123456", "+******"),
        ("anonymous", "*********"),
    ],
)
def test_mask_phone(number: str, masked: str) -> None:
    assert mask_phone(number) == masked


def test_mask_numbers_in_text() -> None:
    assert mask_phone_numbers("4:+819012345678 called +14255550100") == "4:+81******5678 called +14*****0100"


def test_caller_lists() -> None:
    deny, problems = parse_number_list("CALLER_DENY_LIST", " +4930*, +819012345678,,0301234, +1*2")
    assert problems == [
        "CALLER_DENY_LIST entry #3 is neither an E.164 number (+14255550100) nor a prefix ending in '*' (+1425*)",
        "CALLER_DENY_LIST entry #4 is neither an E.164 number (+14255550100) nor a prefix ending in '*' (+1425*)",
    ]
    allow, _ = parse_number_list("CALLER_ALLOW_LIST", "+49*")
    berlin = Identifier("phoneNumber", "4:+4930123456789", "+4930123456789")
    munich = Identifier("phoneNumber", "4:+4989123456789", "+4989123456789")
    user = Identifier("communicationUser", f"8:acs:{AUDIENCE}_x")
    assert screen(berlin, allow, deny) == "caller +49*******6789 is on CALLER_DENY_LIST"  # deny wins
    assert screen(munich, allow, deny) is None
    assert screen(user, allow, None) == f"caller 8:acs:{AUDIENCE}_x is not on CALLER_ALLOW_LIST"
    assert screen(user, None, deny) is None


def test_recent_keys_expire_and_can_be_released() -> None:
    now = [0.0]
    keys = RecentKeys(ttl_seconds=10, max_keys=100, clock=lambda: now[0])
    assert keys.claim("a") and not keys.claim("a")
    now[0] = 9.9
    assert not keys.claim("a")
    now[0] = 10
    assert keys.claim("a")  # expired: claimed afresh
    keys.release("a")  # handling failed transiently
    assert keys.claim("a")


def test_the_rate_limit_slides_over_the_last_minute() -> None:
    now = [0.0]
    window = SlidingWindow(2, window_seconds=60, clock=lambda: now[0])
    assert window.acquire() == 0
    now[0] = 30
    assert window.acquire() == 0
    assert window.acquire() == 30  # the first call leaves the window at 60
    now[0] = 60
    assert window.acquire() == 0
    assert window.acquire() == 30  # the call at 30 leaves it at 90


def test_recent_keys_evict_the_oldest_first() -> None:
    keys = RecentKeys(ttl_seconds=60, max_keys=2)
    for key in "abc":
        assert keys.claim(key)
    assert keys.claim("a")  # evicted when "c" came
    assert not keys.claim("c")


def test_identifiers_without_kind() -> None:
    assert parse_identifier({"rawId": "4:+14255550100"}, "to") == Identifier(
        "phoneNumber", "4:+14255550100", "+14255550100"
    )
    assert parse_identifier({"communicationUser": {"id": "8:acs:x_y"}}, "to").raw_id == "8:acs:x_y"
    anonymous = parse_identifier(
        {"kind": "phoneNumber", "rawId": "4:anonymous", "phoneNumber": {"value": ""}}, "f"
    )
    assert anonymous.phone_number is None and anonymous.masked() == "*********"
    with pytest.raises(PayloadError, match="to has no rawId"):
        parse_identifier({"kind": "microsoftTeamsUser"}, "to")


@pytest.mark.parametrize("value", ["+14255550100\n", "+14255550100\r\n"])
def test_a_number_with_a_line_break_is_refused(value: str) -> None:
    # Exact list entries compare whole strings: "+14255550100\n" must not pass as a number.
    with pytest.raises(PayloadError, match=r"^from\.phoneNumber\.value holds control characters"):
        parse_identifier({"kind": "phoneNumber", "rawId": "4:x", "phoneNumber": {"value": value}}, "from")


def test_event_grid_and_cloudevents_parse_alike() -> None:
    event = incoming_call_event(correlation_id="corr-9")
    for delivered in ([event], as_cloud_event(event)):
        (call,) = parse_delivery(json.dumps(delivered).encode())
        assert isinstance(call, IncomingCall)
        assert call.call_key == "corr-9/server-corr-9"
        assert call.caller.masked() == "+81******5678"
        assert call.event_time is not None and call.event_time.year == 2025
    (other,) = parse_delivery(b'{"type": "Microsoft.Storage.BlobCreated", "specversion": "1.0", "id": "1"}')
    assert other == OtherEvent("Microsoft.Storage.BlobCreated", "1")


def test_incoming_call_needs_a_call_id() -> None:
    event = incoming_call_event()
    del event["data"]["correlationId"], event["data"]["serverCallId"]
    with pytest.raises(PayloadError, match=r"event\[0\]\.data needs a correlationId or a serverCallId"):
        parse_delivery(json.dumps([event]).encode())


def test_callback_events_are_typed() -> None:
    body = [
        callback_event(
            "MediaStreamingFailed",
            "c1",
            mediaStreamingUpdate={"mediaStreamingStatusDetails": "authenticationFailure"},
        ),
        callback_event(
            "ParticipantsUpdated", "c1", participants=[{"identifier": {"rawId": "4:+14255550100"}}, {"x": 1}]
        ),
        callback_event("CallConnected", "c1", resultInformation={"code": "200"}),
    ]
    failed, participants, connected = parse_callback(json.dumps(body).encode())
    assert isinstance(failed, MediaStreamingEvent) and failed.type == "MediaStreamingFailed"
    assert "refused ACS's JWT" in explain_media_failure(failed)
    assert isinstance(participants, ParticipantsUpdated) and len(participants.participants) == 1
    assert type(connected) is CallEvent and connected.result is not None and connected.result.code is None


def test_media_failure_explanations_prefer_the_subcode() -> None:
    (event,) = parse_callback(
        json.dumps(
            callback_event(
                "MediaStreamingFailed",
                "c1",
                resultInformation={"code": 500, "subCode": 8581, "message": "x"},
                mediaStreamingUpdate={"mediaStreamingStatusDetails": "authenticationFailure"},
            )
        ).encode()
    )
    assert "media host is unreachable" in explain_media_failure(event)
    (unknown,) = parse_callback(json.dumps(callback_event("MediaStreamingFailed", "c1")).encode())
    assert explain_media_failure(unknown).startswith("no known explanation")


@pytest.mark.parametrize(
    ("media_host", "profile", "url"),
    [
        ("wss://media.example", None, "wss://media.example/ws/media"),
        ("https://media.example/", "restaurant", "wss://media.example/ws/media?profile=restaurant"),
        ("ws://127.0.0.1:8000", "a-b_c", "ws://127.0.0.1:8000/ws/media?profile=a-b_c"),
    ],
)
def test_transport_url(media_host: str, profile: str | None, url: str) -> None:
    settings = ControlSettings.from_env({"MEDIA_HOST_URL": media_host})
    assert transport_url(settings, profile=profile) == url


def test_settings_name_each_problem_without_numbers(tmp_path: Path) -> None:
    settings = ControlSettings.from_env(
        {
            "ACS_RESOURCE_ID": AUDIENCE,
            "ACS_ENDPOINT": "https://contoso.communication.azure.com/",
            "CALLBACK_URI_HOST": "https://functions.example",
            "MEDIA_HOST_URL": "wss://media.example",
            "ACS_PHONE_NUMBER": "0301234567",
            "ACS_INBOUND_NUMBERS": "+14255550100,0301234567",
        },
        app_root=tmp_path,
    )
    assert settings.problems == {
        "ACS_PHONE_NUMBER": "ACS_PHONE_NUMBER is not an E.164 number (+14255550100)",
        "ACS_INBOUND_NUMBERS": "ACS_INBOUND_NUMBERS entry #2 is not an E.164 number (+14255550100)",
    }
    assert settings.acs_endpoint == "https://contoso.communication.azure.com"
    assert settings.profiles_dir == tmp_path / "prompts"
    assert settings.outbound_allow.numbers == frozenset() and settings.outbound_calls_per_minute == 10
    assert settings.unusable(["ACS_RESOURCE_ID", "ACS_PHONE_NUMBER"]) == ["ACS_PHONE_NUMBER"]


def test_outbound_settings_name_each_problem_without_numbers() -> None:
    settings = ControlSettings.from_env(
        {"OUTBOUND_ALLOW_LIST": "+4930*, +8150, 0301234567", "OUTBOUND_CALLS_PER_MINUTE": "5000"}
    )
    assert settings.problems["OUTBOUND_ALLOW_LIST"] == (
        "OUTBOUND_ALLOW_LIST entry #2 is neither an E.164 number (+14255550100) nor a prefix ending in '*' "
        "(+1425*); OUTBOUND_ALLOW_LIST entry #3 is neither an E.164 number (+14255550100) nor a prefix "
        "ending in '*' (+1425*)"
    )
    assert (
        settings.problems["OUTBOUND_CALLS_PER_MINUTE"]
        == "OUTBOUND_CALLS_PER_MINUTE=5000 is out of range [1, 1000]"
    )
