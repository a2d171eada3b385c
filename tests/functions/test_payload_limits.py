"""Hostile bodies on every JSON door (incoming-call, callbacks, calls): a clear 4xx, never a 500.

Each case here was a 500 or a silent pass before issue 9: JSON nested too deep (RecursionError), a
number over Python's 4,300-digit limit (ValueError), ids of any length or with control characters,
and numbers with a trailing newline that `re.match(...$)` let through.
"""

from __future__ import annotations

from typing import Any

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer
from tests.functions.conftest import body_of, callback_event, incoming_call_event, invoke
from tests.functions.test_callbacks import bearer

pytestmark = pytest.mark.usefixtures("control_env")

DOORS = ("incoming_call", "callbacks", "start_call")
HUGE_NUMBER = b"1" * 5000


def headers_for(door: str, issuer: AcsTokenIssuer) -> dict[str, str]:
    return bearer(issuer) if door == "callbacks" else {}


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 100_000, "body is nested too deeply"),
        (b'{"a": ' * 5_000 + b"1" + b"}" * 5_000, "body is nested too deeply"),
        (HUGE_NUMBER, "body holds a number with too many digits"),
        (b'{"target": ' + HUGE_NUMBER + b"}", "body holds a number with too many digits"),
        (b'[{"type": "x", "data": {"sequenceNumber": -' + HUGE_NUMBER + b"}}]", "too many digits"),
    ],
)
async def test_deep_nesting_and_huge_numbers_are_400(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, door: str, body: bytes, message: str
) -> None:
    response = await invoke(door, body=body, headers=headers_for(door, issuer))
    assert response.status_code == 400
    assert message in body_of(response)["error"]
    assert acs.requests == []


def with_data(event: dict[str, Any], **data: Any) -> dict[str, Any]:
    return {**event, "data": {**event["data"], **data}}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("correlationId", "c" * 600, "event[0].data.correlationId is longer than 512 characters"),
        ("serverCallId", "s" * 600, "event[0].data.serverCallId is longer than 512 characters"),
        (
            "incomingCallContext",
            "x" * (64 * 1024 + 1),
            "event[0].data.incomingCallContext is longer than 65536 characters",
        ),
        ("correlationId", "corr\n-1", "event[0].data.correlationId holds control characters"),
        ("serverCallId", "\ud800", "event[0].data.serverCallId holds control characters"),
        ("to", {"rawId": "4:+1" + "4" * 600}, "event[0].data.to.rawId is longer than 512 characters"),
    ],
)
async def test_out_of_bounds_ids_in_an_incoming_call_are_400_naming_the_field(
    acs: CallAutomationStandIn, field: str, value: Any, message: str
) -> None:
    response = await invoke("incoming_call", json_body=[with_data(incoming_call_event(), **{field: value})])
    assert response.status_code == 400
    error = body_of(response)["error"]
    assert error.startswith(message)
    assert len(error) < 200  # the value is never echoed
    assert acs.requests == []


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"eventType": "E" * 600, "data": {}}, "event[0].eventType is longer than 512 characters"),
        ({"id": "i" * 600, "eventType": "Other", "data": {}}, "event[0].id is longer than 512 characters"),
        (
            {
                "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "data": {"validationCode": "v" * 600},
            },
            "event[0].data.validationCode is longer than 512 characters",
        ),
    ],
)
async def test_out_of_bounds_event_grid_fields_are_400(event: dict[str, Any], message: str) -> None:
    response = await invoke("incoming_call", json_body=[event])
    assert response.status_code == 400
    assert body_of(response)["error"] == message


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"callConnectionId": "c" * 600}, "event[0].data.callConnectionId is longer than 512 characters"),
        ({"callConnectionId": "\ud800"}, "event[0].data.callConnectionId holds control characters"),
        ({"correlationId": "x\r\ny"}, "event[0].data.correlationId holds control characters"),
    ],
)
async def test_out_of_bounds_callback_ids_are_400_and_nothing_is_acted_on(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, data: dict[str, Any], message: str
) -> None:
    event = callback_event("MediaStreamingFailed", "call-1")
    response = await invoke("callbacks", json_body=[with_data(event, **data)], headers=bearer(issuer))
    assert response.status_code == 400
    assert body_of(response)["error"].startswith(message)
    assert acs.requests == []  # no hang-up of a call id ACS never gave


async def test_a_callback_type_of_any_length_is_refused(issuer: AcsTokenIssuer) -> None:
    event = {**callback_event("CallConnected", "call-1"), "type": "T" * 600}
    response = await invoke("callbacks", json_body=event, headers=bearer(issuer))
    assert response.status_code == 400
    assert body_of(response)["error"] == "event[0].type is longer than 512 characters"


@pytest.mark.parametrize(
    "target",
    [
        "+14255550100\n",
        "+4930123456789\n",
        "8:acs:5e7a2b1c-0d4f-4a3e-9b8c-1f2e3d4c5b6a_00000000-0000-0000-0000-00000000b07\n",
        "8:acs:5e7a2b1c-0d4f-4a3e-9b8c-1f2e3d4c5b6a_" + "u" * 300,
    ],
)
async def test_outbound_targets_with_a_trailing_newline_or_no_end_are_400(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch, target: str
) -> None:
    control_env.setenv("OUTBOUND_ALLOW_LIST", "+1*,+4*")
    response = await invoke("start_call", json_body={"target": target})
    assert response.status_code == 400
    assert body_of(response)["error"].startswith("target must be an E.164 number")
    assert acs.requests == []


async def test_an_event_time_at_the_edge_of_the_calendar_still_answers(acs: CallAutomationStandIn) -> None:
    # 0001-01-01 in UTC+14 is before year 1 in UTC: converting it overflowed and ended the call.
    event = {**incoming_call_event(), "eventTime": "0001-01-01T00:00:00+14:00"}
    response = await invoke("incoming_call", json_body=[event])
    assert response.status_code == 200
    assert body_of(response)["answered"] == 1
