"""POST /api/incoming-call: the Event Grid webhook that answers calls with bidirectional media.

Event Grid delivers at least once, so a redelivered IncomingCall must neither be answered twice nor
start an error storm: this instance skips calls it has handled (RecentKeys), and every answer/reject
carries a Repeatability-Request-ID derived from the call, so ACS dedupes across instances too.
Status codes steer Event Grid: 200 when retrying cannot help (done, ignored, or ACS said 4xx),
503 when it can (ACS unreachable or 5xx, or an unexpected error here), and the redelivery is safe
for the reasons above; a call that was not handled gives up its claim so the redelivery is tried.

With CALLER_CHOOSES_PROFILE=true the caller picks the call's profile and voice with the custom
headers X-MS-Custom-Profile and X-MS-Custom-Voice (SIP or VoIP); off by default, as anyone who can
call the number could then pick them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from enum import StrEnum

import azure.functions as func
from azure.communication.callautomation import CallRejectReason

from common.acs_requests import AcsError, acs_request
from common.identifiers import Identifier
from common.profiles import profile_problem
from common.telemetry import CallIds
from common.voices import voice_problem

from .event_grid import IncomingCall, OtherEvent, SubscriptionValidation, handshake_headers, parse_delivery
from .http import CURRENT_CALL, blueprint, error_response, json_response, misconfigured, traced
from .media_streaming import callback_url, media_streaming
from .payload import PayloadError
from .runtime import Runtime, runtime
from .screening import screen
from .settings import ACS_CLIENT, MEDIA, ControlSettings

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = (
    *ACS_CLIENT,
    *MEDIA,
    "ACS_RESOURCE_ID",
    "ACS_PHONE_NUMBER",
    "ACS_INBOUND_NUMBERS",
    "CALLER_ALLOW_LIST",
    "CALLER_DENY_LIST",
    "AOAI_INBOUND_PROFILE",
    "CALLER_CHOOSES_PROFILE",
)
ACS_TIMEOUT_SECONDS = 10.0  # well inside Event Grid's 30 s delivery timeout
OPERATION_CONTEXT = "inbound-call"
PROFILE_HEADER = "x-ms-custom-profile"  # custom header names, lower case (event_grid lowers them)
VOICE_HEADER = "x-ms-custom-voice"
_REPEATABILITY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:acs-realtime-voice:repeatability")


class Outcome(StrEnum):
    ANSWERED = "answered"
    REJECTED = "rejected"  # failed CALLER_ALLOW_LIST / CALLER_DENY_LIST
    IGNORED = "ignored"  # not one of our identities
    DUPLICATE = "duplicate"  # handled here already
    FAILED = "failed"  # ACS refused (4xx): logged, not retried
    RETRY = "retry"  # ACS unreachable or 5xx, or an unexpected error: Event Grid should redeliver


@bp.function_name("incoming_call")
@bp.route(route="incoming-call", methods=["POST", "OPTIONS"], auth_level=func.AuthLevel.FUNCTION)
@traced("incoming-call")
async def incoming_call(req: func.HttpRequest) -> func.HttpResponse:
    if req.method.upper() == "OPTIONS":
        origin = req.headers.get("WebHook-Request-Origin")
        if not origin:
            return error_response(
                400, "OPTIONS is the CloudEvents handshake: WebHook-Request-Origin is missing"
            )
        log.info("CloudEvents subscription handshake from %s", origin)
        return func.HttpResponse(status_code=200, headers=handshake_headers(origin))

    try:
        events = parse_delivery(req.get_body())
    except PayloadError as exc:
        log.warning("refused Event Grid delivery: %s", exc)
        return error_response(exc.status, str(exc))

    calls: list[IncomingCall] = []
    for event in events:
        if isinstance(event, SubscriptionValidation):
            # Answered before any settings check: subscriptions are created while deploying.
            log.info("Event Grid subscription validation answered")
            return json_response({"validationResponse": event.validation_code})
        if isinstance(event, OtherEvent):
            log.info("ignoring Event Grid event %s (id %s)", event.event_type, event.event_id)
        else:
            calls.append(event)

    counts: Counter[Outcome] = Counter()
    if calls:
        rt = runtime()
        missing = rt.settings.unusable(NEEDS)
        if missing:
            log.error("cannot answer %d incoming call(s): %s unusable", len(calls), ", ".join(missing))
            return misconfigured(missing)
        handled = await asyncio.gather(*(_handle(rt, call) for call in calls))
        counts.update(outcome for outcome, _ in handled)
        CURRENT_CALL.set(handled[0][1])  # the request record joins the (first) call it delivered, as answered

    if counts[Outcome.RETRY]:
        return error_response(503, f"{counts[Outcome.RETRY]} call(s) could not be handled now; retry")
    return json_response({outcome.value: counts[outcome] for outcome in Outcome if outcome != Outcome.RETRY})


async def _handle(rt: Runtime, call: IncomingCall) -> tuple[Outcome, CallIds]:
    """The outcome, and the call's ids as far as they became known (answered: its connection id)."""
    t = rt.telemetry
    ids = CallIds(
        correlation_id=call.correlation_id or "",
        server_call_id=call.server_call_id or "",
        caller=call.caller.shown(t.show_number),
    )
    dims = ids.dims()
    if not rt.handled_calls.claim(call.call_key):
        t.event("IncomingCallDuplicate", ids, event_id=call.event_id or "")
        log.info(
            "duplicate delivery (event %s) of incoming call %s skipped",
            call.event_id,
            call.correlation_id,
            extra=dims,
        )
        return Outcome.DUPLICATE, ids
    t.event("IncomingCallReceived", ids, to=call.to.shown(t.show_number), event_id=call.event_id or "")
    outcome = Outcome.RETRY  # until handled: whatever goes wrong (even cancellation) frees the claim
    try:
        outcome, ids = await _answer_or_turn_away(rt, call, ids)
    except AcsError as exc:
        t.event("IncomingCallFailed", ids, error=str(exc), transient=exc.transient)
        if exc.transient:
            log.warning(
                "incoming call %s not handled, Event Grid will redeliver: %s",
                call.correlation_id,
                exc,
                extra=dims,
            )
        else:
            log.error("ACS refused incoming call %s (not retried): %s", call.correlation_id, exc, extra=dims)
            outcome = Outcome.FAILED
    except Exception as exc:
        # A bug or a surprise, not the caller's fault: Event Grid's redelivery gets a real attempt.
        log.exception(
            "incoming call %s not handled (unexpected error), Event Grid will redeliver",
            call.correlation_id,
            extra=dims,
        )
        t.event("IncomingCallFailed", ids, error=type(exc).__name__, transient=True)
    finally:
        if outcome is Outcome.RETRY:
            rt.handled_calls.release(call.call_key)
    return outcome, ids


async def _answer_or_turn_away(rt: Runtime, call: IncomingCall, ids: CallIds) -> tuple[Outcome, CallIds]:
    s, t = rt.settings, rt.telemetry
    dims = ids.dims()
    who = f"call {call.correlation_id} from {call.caller.masked()} to {call.to.masked()}"
    if not _is_ours(call.to, s):
        t.event("IncomingCallIgnored", ids, reason="not_our_identity", to=call.to.shown(t.show_number))
        log.info("ignoring %s: not one of our numbers or users", who, extra=dims)
        return Outcome.IGNORED, ids

    client = rt.call_automation()
    reason = screen(call.caller, s.caller_allow, s.caller_deny)
    if reason is not None:
        await acs_request(
            client.reject_call(
                call.incoming_call_context,
                call_reject_reason=CallRejectReason.FORBIDDEN,
                headers=_repeatability("reject", call),
            ),
            timeout=ACS_TIMEOUT_SECONDS,
            operation="reject_call",
            telemetry=t,
            target=rt.acs_host,
            ids=ids,
        )
        t.event("IncomingCallRejected", ids, reason=reason, reject_reason="forbidden")
        log.warning("rejected %s: %s", who, reason, extra=dims)
        return Outcome.REJECTED, ids

    profile, voice = _callers_choice(call, s, ids)
    answered = await acs_request(
        client.answer_call(
            call.incoming_call_context,
            callback_url(s, caller=ids.caller),
            media_streaming=media_streaming(
                s, profile=profile, voice=voice, caller=ids.caller, server_call_id=ids.server_call_id
            ),
            operation_context=OPERATION_CONTEXT,
            headers=_repeatability("answer", call),
        ),
        timeout=ACS_TIMEOUT_SECONDS,
        operation="answer_call",
        telemetry=t,
        target=rt.acs_host,
        ids=ids,
    )
    ids = replace(ids, call_connection_id=answered.call_connection_id or "")
    waited_ms = (datetime.now(UTC) - call.event_time).total_seconds() * 1000 if call.event_time else None
    t.event(
        "CallAnswered",
        ids,
        profile=profile or "default",
        voice=voice or "default",
        audio_format=s.audio_format,
    )
    if waited_ms is not None:
        t.metric("time_to_answer_ms", waited_ms, ids)
    log.info(
        "answered %s: call_connection_id=%s profile=%s voice=%s",
        who,
        answered.call_connection_id,
        profile or "(default)",
        voice or "(default)",
        extra=ids.dims(),
    )
    return Outcome.ANSWERED, ids


def _callers_choice(call: IncomingCall, s: ControlSettings, ids: CallIds) -> tuple[str | None, str | None]:
    """The profile and voice for the call: the caller's, when allowed and valid; otherwise
    AOAI_INBOUND_PROFILE and None (the media host's AOAI_VOICE). A bad choice never fails the call."""
    if not s.caller_chooses_profile:
        return s.inbound_profile, None
    profile = call.custom_headers.get(PROFILE_HEADER)
    if profile is not None and (problem := profile_problem(s.profiles_dir, profile)) is not None:
        log.warning("ignoring the caller's X-MS-Custom-Profile: %s", problem, extra=ids.dims())
        profile = None
    voice = call.custom_headers.get(VOICE_HEADER)
    if voice is not None and (problem := voice_problem(voice)) is not None:
        log.warning("ignoring the caller's X-MS-Custom-Voice: %s", problem, extra=ids.dims())
        voice = None
    return profile or s.inbound_profile, voice


def _is_ours(to: Identifier, s: ControlSettings) -> bool:
    if to.phone_number is not None:
        return not s.inbound_numbers or to.phone_number in s.inbound_numbers
    return to.is_user_of(s.resource_id)


def _repeatability(operation: str, call: IncomingCall) -> dict[str, str]:
    """The same headers for every delivery of this call's event, so ACS answers at most once.

    The SDK keeps caller-supplied values (it only fills in missing ones). First-Sent is the event's
    own time, so redeliveries send byte-identical requests; never later than now.
    """
    now = datetime.now(UTC)
    first_sent = min(call.event_time, now) if call.event_time is not None else now
    return {
        "Repeatability-Request-ID": str(uuid.uuid5(_REPEATABILITY_NAMESPACE, f"{operation}:{call.call_key}")),
        "Repeatability-First-Sent": format_datetime(first_sent.astimezone(UTC), usegmt=True),
    }
