"""Event Grid deliveries to the IncomingCall webhook, in either output schema, as typed events.

- Event Grid schema: an array of `{id, eventType, data, eventTime, ...}`; the subscription handshake
  is a `Microsoft.EventGrid.SubscriptionValidationEvent` POSTed in that array.
- CloudEvents 1.0: `{id, type, data, time, specversion}`, one object or an array; the handshake is an
  HTTP OPTIONS carrying `WebHook-Request-Origin` (answered by `handshake_headers`).

A batch is validated whole before anything is acted on: a malformed event gets the delivery a 400
that says what was wrong, rather than half a batch answered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .identifiers import Identifier, parse_identifier
from .payload import (
    MAX_CONTEXT_CHARS,
    MAX_ID_CHARS,
    PayloadError,
    decode_json,
    object_list,
    optional_str,
    require_object,
    require_str,
)

INCOMING_CALL = "Microsoft.Communication.IncomingCall"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


@dataclass(frozen=True)
class SubscriptionValidation:
    validation_code: str


@dataclass(frozen=True)
class IncomingCall:
    event_id: str | None
    correlation_id: str | None  # ACS's call id: what every log line of the call carries
    server_call_id: str | None
    incoming_call_context: str  # opaque; passed verbatim to answer/reject
    to: Identifier
    caller: Identifier
    event_time: datetime | None
    custom_headers: Mapping[str, str]  # the caller's SIP and VoIP custom context, by lower-case name

    @property
    def call_key(self) -> str:
        """Stable across redeliveries of this call's event, whichever instance gets them."""
        return f"{self.correlation_id or ''}/{self.server_call_id or ''}"


@dataclass(frozen=True)
class OtherEvent:
    event_type: str
    event_id: str | None


Event = SubscriptionValidation | IncomingCall | OtherEvent


def parse_delivery(body: bytes) -> list[Event]:
    items = object_list(decode_json(body), "an Event Grid event or CloudEvent, or an array of them")
    return [_parse_event(item, f"event[{index}]") for index, item in enumerate(items)]


def handshake_headers(origin: str) -> dict[str, str]:
    """CloudEvents abuse protection: consent to deliveries from `origin` (the OPTIONS handshake)."""
    return {"WebHook-Allowed-Origin": origin, "Allow": "POST"}


def _parse_event(item: dict[str, Any], where: str) -> Event:
    event_type = optional_str(item, "eventType", where) or optional_str(item, "type", where)
    if event_type is None:
        raise PayloadError(f"{where} has neither eventType (Event Grid schema) nor type (CloudEvents schema)")
    event_id = optional_str(item, "id", where)
    if event_type == SUBSCRIPTION_VALIDATION:
        data = require_object(item, "data", where)
        return SubscriptionValidation(require_str(data, "validationCode", f"{where}.data"))
    if event_type != INCOMING_CALL:
        return OtherEvent(event_type, event_id)

    data = require_object(item, "data", where)
    at = f"{where}.data"
    correlation_id = optional_str(data, "correlationId", at)
    server_call_id = optional_str(data, "serverCallId", at)
    if correlation_id is None and server_call_id is None:
        raise PayloadError(f"{at} needs a correlationId or a serverCallId")
    return IncomingCall(
        event_id=event_id,
        correlation_id=correlation_id,
        server_call_id=server_call_id,
        incoming_call_context=require_str(data, "incomingCallContext", at, max_chars=MAX_CONTEXT_CHARS),
        to=parse_identifier(data.get("to"), f"{at}.to"),
        caller=parse_identifier(data.get("from"), f"{at}.from"),
        event_time=_timestamp(optional_str(item, "eventTime", where) or optional_str(item, "time", where)),
        custom_headers=_custom_headers(data.get("customContext")),
    )


def _custom_headers(context: Any) -> dict[str, str]:
    """`customContext.sipHeaders` then `.voipHeaders` (the first of a name wins), string values only.

    The caller writes these, so a malformed entry is left out rather than failing the delivery: the
    call is answered as if it had not been sent.
    """
    headers: dict[str, str] = {}
    if not isinstance(context, dict):
        return headers
    for group in (context.get("sipHeaders"), context.get("voipHeaders")):
        if isinstance(group, dict):
            for name, value in group.items():
                if isinstance(value, str) and len(value) <= MAX_ID_CHARS:
                    headers.setdefault(name.lower(), value)
    return headers


def _timestamp(value: str | None) -> datetime | None:
    """In UTC, or None when unusable: converted here, since 0001-01-01T00:00+14:00 overflows in UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
