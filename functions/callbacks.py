"""POST /api/callbacks: Call Automation events about the calls we answered or placed.

Anonymous at the Functions level because ACS cannot send a function key: the ACS JWT is the
authentication, verified (signature, issuer, audience, expiry) before the body is parsed. The
answer is always quick; the one action taken here, hanging up a call whose media stream failed, is
bounded by a timeout.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.functions as func

from common.acs_jwt import JwtRejected
from common.acs_requests import AcsError, hang_up
from common.phone import mask_phone_numbers
from common.telemetry import CallIds, checked_id

from .call_events import (
    CallEvent,
    CallTransferAccepted,
    MediaStreamingEvent,
    ParticipantsUpdated,
    explain_media_failure,
    parse_callback,
)
from .http import CURRENT_CALL, blueprint, error_response, json_response, misconfigured, traced
from .payload import PayloadError
from .runtime import Runtime, runtime
from .settings import ACS_CLIENT, ACS_JWT

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = (*ACS_JWT, *ACS_CLIENT)
HANG_UP_TIMEOUT_SECONDS = 5.0

_INFO = frozenset({"CallConnected", "MediaStreamingStarted", "MediaStreamingStopped", "CallDisconnected"})
_ERRORS = frozenset({"AnswerFailed", "CreateCallFailed", "CallTransferFailed"})


@bp.function_name("callbacks")
@bp.route(route="callbacks", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@traced("callbacks")
async def callbacks(req: func.HttpRequest) -> func.HttpResponse:
    rt = runtime()
    missing = rt.settings.unusable(NEEDS)
    if missing:
        log.error("cannot accept Call Automation callbacks: %s unusable", ", ".join(missing))
        return misconfigured(missing)
    try:
        await rt.jwt_verifier().verify_authorization(req.headers.get("Authorization"))
    except JwtRejected as exc:
        if exc.reason == "jwks_unavailable":
            # Our outage, not the sender's fault: still nothing is acted on (fail closed).
            log.error("cannot verify callbacks: %s", exc)
            return error_response(503, f"cannot verify ACS tokens right now: {exc}")
        log.warning("refused callback: %s (%s)", exc, exc.reason)
        rt.telemetry.event("CallbackRefused", reason=exc.reason)
        rt.telemetry.metric("rejected_jwts", 1, reason=exc.reason)
        return error_response(401, f"ACS token rejected ({exc.reason}): {exc}")

    try:
        events = parse_callback(req.get_body())
    except PayloadError as exc:
        log.warning("refused callback body: %s", exc)
        return error_response(exc.status, str(exc))
    caller = req.params.get("caller", "")  # as answer_call/create_call put it in the callback URL
    for event in events:
        await _handle(rt, event, checked_id(caller))
    return json_response({"received": len(events)})


async def _handle(rt: Runtime, event: CallEvent, caller: str) -> None:
    t = rt.telemetry
    ids = CallIds(
        correlation_id=event.correlation_id or "",
        call_connection_id=event.call_connection_id,
        server_call_id=event.server_call_id or "",
        caller=caller,
    )
    if CURRENT_CALL.get() is None:
        CURRENT_CALL.set(ids)
    dims = ids.dims()
    codes: dict[str, Any] = {} if event.result is None else {
        "code": event.result.code, "sub_code": event.result.sub_code, "message": mask_phone_numbers(event.result.message)
    }  # fmt: skip
    t.event(
        "CallbackReceived", ids, type=event.type, operation_context=event.operation_context or "", **codes
    )
    context = f", operation_context={event.operation_context}" if event.operation_context else ""
    about = f"{event.type} (correlation_id={event.correlation_id}, call_connection_id={event.call_connection_id}{context})"
    result = f": {mask_phone_numbers(str(event.result))}" if event.result is not None else ""
    if isinstance(event, MediaStreamingEvent) and event.type == "MediaStreamingFailed":
        explanation = explain_media_failure(event)
        log.error(
            "%s%s status=%s details=%s. %s Hanging up so the caller is not left in silence.",
            about,
            result,
            event.status,
            event.status_details,
            explanation,
            extra=dims,
        )
        t.event(
            "MediaStreamingFailed", ids, details=event.status_details or "", explanation=explanation, **codes
        )
        if await _hang_up(rt, ids):
            t.event("CallEnded", ids, who="control_plane", why="media_streaming_failed")
    elif event.type == "CallTransferFailed":
        t.event("TransferFailed", ids, **codes)
        log.error("%s%s", about, result, extra=dims)
    elif event.type in _ERRORS:
        log.error("%s%s", about, result, extra=dims)
    elif isinstance(event, CallTransferAccepted):
        target = event.transfer_target.masked() if event.transfer_target else "unknown"
        shown_target = event.transfer_target.shown(t.show_number) if event.transfer_target else "unknown"
        t.event("TransferAccepted", ids, target=shown_target)
        log.info("%s: transferred to %s", about, target, extra=dims)
    elif isinstance(event, ParticipantsUpdated):
        log.info(
            "%s: %d participant(s), sequence %s",
            about,
            len(event.participants),
            event.sequence_number,
            extra=dims,
        )
    elif event.type in _INFO:
        log.info("%s%s", about, result, extra=dims)
    else:
        log.debug("ignoring callback %s", about, extra=dims)


async def _hang_up(rt: Runtime, ids: CallIds) -> bool:
    """Hang the call up for everyone; True if this did it."""
    try:
        done = await hang_up(
            rt.call_automation(),
            ids,
            telemetry=rt.telemetry,
            timeout=HANG_UP_TIMEOUT_SECONDS,
            target=rt.acs_host,
        )
    except AcsError as exc:
        log.error("could not hang up call %s: %s", ids.call_connection_id, exc, extra=ids.dims())
        return False
    if done:
        log.info("hung up call %s for everyone", ids.call_connection_id, extra=ids.dims())
    return done
