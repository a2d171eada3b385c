"""Property: whatever the bytes, each control-plane parser gives typed events or a PayloadError with a
4xx status (a reason for the sender), never another exception; through the real handlers, never a 5xx.

Inputs: arbitrary JSON (huge ints and floats, NaN, nulls, nesting), valid payloads with values
replaced or removed, unicode with lone surrogates (as JSON escapes), control characters, over-long
strings, binary garbage, 100k-deep arrays and 5,000-digit numbers. Example counts stay modest and
the runs derandomized, so `make test` stays fast and CI sees the same examples every time.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings

from common.profiles import APP_ROOT, DEFAULT_PROFILES_DIR
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer
from functions.call_events import CallEvent, parse_callback
from functions.event_grid import IncomingCall, OtherEvent, SubscriptionValidation, parse_delivery
from functions.outbound_calls import OutboundRequest, parse_request
from functions.payload import MAX_BODY_BYTES, PayloadError
from tests.functions.conftest import OUR_USER, callback_event, incoming_call_event, invoke
from tests.functions.test_callbacks import bearer
from tests.strategies import bodies

PROFILES = APP_ROOT / DEFAULT_PROFILES_DIR
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)
# Through the handlers: fewer examples (each is a whole invocation); the fixtures hold no per-example state.
FUZZ_HTTP = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def outbound_body() -> dict[str, Any]:
    return {"target": "+14255550123", "profile": "restaurant"}


def assert_typed_or_refused(parse: Any, body: bytes, kinds: tuple[type, ...]) -> None:
    try:
        parsed = parse(body)
    except PayloadError as exc:
        assert 400 <= exc.status < 500, exc.status
        assert 0 < len(str(exc)) < 600, "a refusal says why in a bounded message"
        return
    for item in parsed if isinstance(parsed, list) else [parsed]:
        assert isinstance(item, kinds), item


@FUZZ
@given(bodies([incoming_call_event(), callback_event("CallConnected", "c1")]))
@example(b'[{"eventType": "Microsoft.Communication.IncomingCall", "eventTime": "0001-01-01T00:00:00+14:00"}]')
def test_event_grid_deliveries_parse_or_are_refused(body: bytes) -> None:
    assert_typed_or_refused(parse_delivery, body, (IncomingCall, SubscriptionValidation, OtherEvent))


@FUZZ
@given(
    bodies(
        [
            callback_event(
                "MediaStreamingFailed",
                "c1",
                resultInformation={"code": 500, "subCode": 8581, "message": "no"},
                mediaStreamingUpdate={"mediaStreamingStatusDetails": "forbidden"},
            ),
            callback_event("ParticipantsUpdated", "c1", participants=[{"identifier": {"rawId": OUR_USER}}]),
            callback_event("CallTransferAccepted", "c1", transferTarget={"rawId": "4:+14255550123"}),
        ]
    )
)
def test_callbacks_parse_or_are_refused(body: bytes) -> None:
    assert_typed_or_refused(parse_callback, body, (CallEvent,))


@FUZZ
@given(bodies(outbound_body()))
def test_outbound_requests_parse_or_are_refused(body: bytes) -> None:
    assert_typed_or_refused(lambda b: parse_request(b, PROFILES), body, (OutboundRequest,))


def test_bodies_over_the_limit_are_413() -> None:
    for parse in (parse_delivery, parse_callback, lambda b: parse_request(b, PROFILES)):
        with pytest.raises(PayloadError) as refused:
            parse(b" " * (MAX_BODY_BYTES + 1))
        assert refused.value.status == 413


# --- through the registered handlers -----------------------------------------------------------


@pytest.mark.usefixtures("control_env")
@FUZZ_HTTP
@given(body=bodies([incoming_call_event()]))
async def test_incoming_call_never_answers_5xx(acs: CallAutomationStandIn, body: bytes) -> None:
    response = await invoke("incoming_call", body=body)
    assert response.status_code < 500, response.get_body()[:300]


@pytest.mark.usefixtures("control_env")
@FUZZ_HTTP
@given(body=bodies([callback_event("MediaStreamingFailed", "c1")]))
async def test_callbacks_never_answer_5xx(
    acs: CallAutomationStandIn, issuer: AcsTokenIssuer, body: bytes
) -> None:
    response = await invoke("callbacks", body=body, headers=bearer(issuer))
    assert response.status_code < 500, response.get_body()[:300]


@pytest.mark.usefixtures("control_env")
@FUZZ_HTTP
@given(body=bodies(outbound_body()))
async def test_calls_never_answer_5xx(acs: CallAutomationStandIn, body: bytes) -> None:
    response = await invoke("start_call", body=body)
    assert response.status_code < 500, response.get_body()[:300]
