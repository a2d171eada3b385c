"""POST /api/twilio/stream-status: the stream's lifecycle in the audit trail, behind the same door."""

from __future__ import annotations

import logging

import pytest

from tests.functions.conftest import audit_events, body_of
from tests.functions.twilio_support import (
    AUTH_TOKEN,
    CALL_SID,
    STREAM_SID,
    post_twilio,
    public_url,
    reference_signature,
    stream_status_fields,
    twilio_env,  # noqa: F401 - a fixture
    voice_fields,
)

pytestmark = pytest.mark.usefixtures("twilio_env")


@pytest.fixture(autouse=True)
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


@pytest.mark.parametrize("event", ["stream-started", "stream-stopped"])
async def test_the_stream_lifecycle_is_recorded_on_the_call(
    audit_log: pytest.LogCaptureFixture, event: str
) -> None:
    response = await post_twilio("twilio_stream_status", stream_status_fields(StreamEvent=event))
    assert (response.status_code, response.get_body()) == (204, b"")
    assert audit_events(audit_log, "TwilioStreamStatus") == [
        {
            "event": "TwilioStreamStatus",
            "plane": "functions",
            "correlation_id": CALL_SID,
            "provider": "twilio",
            "stream_event": event,
            "error": "",
            "stream_sid": STREAM_SID,
        }
    ]


async def test_a_stream_error_is_recorded_with_twilios_message_masked(
    audit_log: pytest.LogCaptureFixture,
) -> None:
    fields = stream_status_fields(
        StreamEvent="stream-error", StreamError="Stream - WebSocket - Connection Timeout to +14155550123"
    )
    response = await post_twilio("twilio_stream_status", fields)
    assert response.status_code == 204
    [status] = audit_events(audit_log, "TwilioStreamStatus")
    assert (status["stream_event"], status["error"]) == (
        "stream-error",
        "Stream - WebSocket - Connection Timeout to +14*****0123",
    )
    [warning] = [r for r in audit_log.records if r.name == "functions.twilio_status"]
    assert warning.levelno == logging.WARNING
    assert "+14155550123" not in audit_log.text


async def test_a_bad_signature_is_refused_and_nothing_recorded(audit_log: pytest.LogCaptureFixture) -> None:
    fields = stream_status_fields()
    # A voice webhook's signature is bound to its own URL: replayed here it is refused.
    replayed = reference_signature(AUTH_TOKEN, public_url("twilio_voice"), fields)
    response = await post_twilio("twilio_stream_status", fields, signature=replayed)
    assert response.status_code == 403
    [refused] = audit_events(audit_log, "TwilioWebhookRefused")
    assert (refused["route"], refused["reason"]) == ("twilio/stream-status", "bad_signature")
    assert audit_events(audit_log, "TwilioStreamStatus") == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"StreamSid": None}, "StreamSid must be MZ followed by 32 hex digits"),
        (
            {"StreamEvent": "started"},
            "StreamEvent must be a stream event (stream-started, stream-stopped or stream-error)",
        ),
        ({"CallSid": "CA"}, "CallSid must be CA followed by 32 hex digits"),
        ({"StreamError": "x" * 1025}, "StreamError is longer than 1024 characters"),
    ],
)
async def test_malformed_status_is_400(overrides: dict[str, str | None], message: str) -> None:
    response = await post_twilio("twilio_stream_status", stream_status_fields(**overrides))
    assert (response.status_code, body_of(response)) == (400, {"error": message})


async def test_a_voice_webhook_posted_here_lacks_a_stream() -> None:
    response = await post_twilio("twilio_stream_status", voice_fields())
    assert (response.status_code, body_of(response)["error"]) == (
        400,
        "StreamSid must be MZ followed by 32 hex digits",
    )


async def test_get_is_405_and_settings_are_checked(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("TWILIO_ACCOUNT_SID")
    assert (await post_twilio("twilio_stream_status", [], method="GET")).status_code == 405
    response = await post_twilio("twilio_stream_status", stream_status_fields())
    assert response.status_code == 503
    assert "TWILIO_ACCOUNT_SID" in body_of(response)["error"]
