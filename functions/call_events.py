"""Call Automation callbacks (CloudEvents that ACS POSTs to the callback URL) as typed events.

The Python SDK has no event parser (unlike .NET's CallAutomationEventParser), so this module is it.
Only what the handlers use is kept; an unknown type still parses (as a plain CallEvent) so new ACS
events never turn into errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.identifiers import Identifier

from .identifiers import parse_identifier
from .payload import (
    PayloadError,
    decode_json,
    object_list,
    optional_int,
    optional_str,
    require_object,
    require_str,
)

_PREFIX = "Microsoft.Communication."
MAX_MESSAGE_CHARS = 1024  # resultInformation.message: a sentence or two from ACS

_UNREACHABLE = (
    "ACS could not open the media WebSocket: the media host is unreachable. Check that MEDIA_HOST_URL "
    "is a public wss:// URL with a valid TLS certificate, that the media host serves /ws/media there, "
    "and that it accepts the ACS JWT (its ACS_RESOURCE_ID must be this resource's immutable id)."
)
# Why media streaming failed, by result subCode (ACS's troubleshooting codes) ...
MEDIA_FAILURE_BY_SUBCODE: dict[int, str] = {
    8581: _UNREACHABLE,  # "Invalid Stream URL"
    8603: (
        "media streaming broke after it had started: the media host closed or dropped the WebSocket "
        "(look for this call_connection_id in the media host's log)."
    ),
    8604: "media streaming was canceled, usually because the call ended while it was starting.",
}
# ... and, failing that, by mediaStreamingUpdate.mediaStreamingStatusDetails.
MEDIA_FAILURE_BY_DETAIL: dict[str, str] = {
    "initialWebSocketConnectionFailed": _UNREACHABLE,
    "streamConnectionUnsuccessful": _UNREACHABLE,
    "authenticationFailure": (
        "the media host refused ACS's JWT: check ACS_RESOURCE_ID (the immutable resource id) and "
        "ACS_JWT_ISSUER on the media host."
    ),
    "streamUrlMissing": "the answer/create request carried no transport URL (MEDIA_HOST_URL).",
    "streamConnectionInterrupted": (
        "the media WebSocket dropped mid-call (media host restart, scale-in or a network break)."
    ),
    "tooManyRequests": (
        "too many streams: ACS throttled, or the media host refused the call "
        "(MAX_CONCURRENT_CALLS reached, or draining)."
    ),
    "forbidden": "the media host answered 403 to ACS's WebSocket request.",
    "badRequest": "the media host answered 400 to ACS's WebSocket request.",
    "serviceTimeout": "the media host did not complete the WebSocket handshake in time.",
    "serviceShutdown": "ACS's media service shut down the stream (transient on ACS's side).",
}
_UNKNOWN_FAILURE = "no known explanation: see the code, subCode and message."


@dataclass(frozen=True)
class ResultInformation:
    code: int | None
    sub_code: int | None
    message: str

    def __str__(self) -> str:
        return f"code={self.code} subCode={self.sub_code} message={self.message!r}"


@dataclass(frozen=True)
class CallEvent:
    type: str  # without the "Microsoft.Communication." prefix: "CallConnected", ...
    call_connection_id: str
    correlation_id: str | None
    server_call_id: str | None
    operation_context: str | None  # ours: "inbound-call" / "outbound-call"
    result: ResultInformation | None


@dataclass(frozen=True)
class MediaStreamingEvent(CallEvent):  # MediaStreamingStarted / Stopped / Failed
    status: str | None
    status_details: str | None


@dataclass(frozen=True)
class ParticipantsUpdated(CallEvent):
    sequence_number: int | None
    participants: tuple[Identifier, ...]


@dataclass(frozen=True)
class CallTransferAccepted(CallEvent):
    transfer_target: Identifier | None


def parse_callback(body: bytes) -> list[CallEvent]:
    items = object_list(decode_json(body), "a CloudEvent or an array of CloudEvents")
    return [_parse_event(item, f"event[{index}]") for index, item in enumerate(items)]


def explain_media_failure(event: CallEvent) -> str:
    sub_code = event.result.sub_code if event.result is not None else None
    if sub_code in MEDIA_FAILURE_BY_SUBCODE:
        return MEDIA_FAILURE_BY_SUBCODE[sub_code]
    details = event.status_details if isinstance(event, MediaStreamingEvent) else None
    return MEDIA_FAILURE_BY_DETAIL.get(details or "", _UNKNOWN_FAILURE)


def _parse_event(item: dict[str, Any], where: str) -> CallEvent:
    event_type = require_str(item, "type", where).removeprefix(_PREFIX)
    data = require_object(item, "data", where)
    at = f"{where}.data"
    base: dict[str, Any] = {
        "type": event_type,
        "call_connection_id": require_str(data, "callConnectionId", at),
        "correlation_id": optional_str(data, "correlationId", at),
        "server_call_id": optional_str(data, "serverCallId", at),
        "operation_context": optional_str(data, "operationContext", at),
        "result": _result(data.get("resultInformation")),
    }
    if event_type.startswith("MediaStreaming"):
        update = data.get("mediaStreamingUpdate")
        update = update if isinstance(update, dict) else {}
        return MediaStreamingEvent(
            **base,
            status=optional_str(update, "mediaStreamingStatus", f"{at}.mediaStreamingUpdate"),
            status_details=optional_str(update, "mediaStreamingStatusDetails", f"{at}.mediaStreamingUpdate"),
        )
    if event_type == "ParticipantsUpdated":
        raw = data.get("participants")
        entries = raw if isinstance(raw, list) else []
        participants = (_lenient_identifier(p.get("identifier")) for p in entries if isinstance(p, dict))
        return ParticipantsUpdated(
            **base,
            sequence_number=optional_int(data, "sequenceNumber"),
            participants=tuple(p for p in participants if p is not None),
        )
    if event_type == "CallTransferAccepted":
        return CallTransferAccepted(**base, transfer_target=_lenient_identifier(data.get("transferTarget")))
    return CallEvent(**base)


def _result(value: Any) -> ResultInformation | None:
    if not isinstance(value, dict):
        return None
    message = value.get("message")
    return ResultInformation(
        code=optional_int(value, "code"),
        sub_code=optional_int(value, "subCode"),
        # Free text we only log (masked): cut, not refused, so an odd message never costs the event.
        message=message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else "",
    )


def _lenient_identifier(value: Any) -> Identifier | None:
    # Details we only log must not make ACS's whole callback a 400.
    try:
        return parse_identifier(value, "identifier")
    except PayloadError:
        return None
