"""POST /api/calls: place an outbound call that streams to the media host exactly like an inbound one.

Body: `{"target": "+14255550100" | "8:acs:...", "profile": "<optional instructions profile>",
"voice": "<optional model voice, common.voices.VOICES>"}`.
Answers 202 with the call connection id as soon as ACS has accepted the request (the callee may
still be ringing; CallConnected or CreateCallFailed arrives at /api/callbacks).

Calls cost money, so a key that leaks must not be a phone bill: phone numbers must be on
OUTBOUND_ALLOW_LIST (403 otherwise; ACS users are free), and each instance places at most
OUTBOUND_CALLS_PER_MINUTE calls (429 with Retry-After beyond). Both refusals are audited.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import azure.functions as func
from azure.communication.callautomation import PhoneNumberIdentifier

from common.acs_requests import AcsError, acs_request
from common.call_automation import sdk_identifier
from common.identifiers import TARGET_FORMS, Identifier, IdentifierError, parse_target
from common.profiles import profile_problem
from common.telemetry import CallIds
from common.voices import voice_problem

from .http import CURRENT_CALL, acs_failed, blueprint, error_response, json_response, misconfigured, traced
from .media_streaming import callback_url, media_streaming
from .payload import PayloadError, decode_json
from .runtime import Runtime, runtime
from .screening import NumberList
from .settings import ACS_CLIENT, MEDIA, OUTBOUND

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = (*ACS_CLIENT, *MEDIA, *OUTBOUND, "ACS_PHONE_NUMBER")
FIELDS = ("target", "profile", "voice")
ACS_TIMEOUT_SECONDS = 10.0
OPERATION_CONTEXT = "outbound-call"


@dataclass(frozen=True)
class OutboundRequest:
    target: Identifier  # a phone number or an ACS user
    profile: str | None
    voice: str | None  # None: the media host's AOAI_VOICE

    @property
    def is_pstn(self) -> bool:
        return self.target.phone_number is not None


def parse_request(body: bytes, profiles_dir: Path) -> OutboundRequest:
    """Validate the body; messages never echo a submitted number."""
    value = decode_json(body)
    if not isinstance(value, dict):
        raise PayloadError('body must be a JSON object like {"target": "+14255550100"}')
    unknown = sorted(set(value) - set(FIELDS))
    if unknown:
        names = ", ".join(name[:40] for name in unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise PayloadError(f"unknown field(s): {names}; allowed: {', '.join(FIELDS)}")
    if value.get("target") is None:
        raise PayloadError(f"target is required: {TARGET_FORMS}")
    try:
        target = parse_target(value["target"])
    except IdentifierError as exc:
        raise PayloadError(str(exc)) from None
    profile = value.get("profile")
    if profile is not None:
        if not isinstance(profile, str):
            raise PayloadError("profile must be a string")
        problem = profile_problem(profiles_dir, profile)
        if problem is not None:
            raise PayloadError(problem)
    voice = value.get("voice")
    if voice is not None:
        if not isinstance(voice, str):
            raise PayloadError("voice must be a string")
        problem = voice_problem(voice)
        if problem is not None:
            raise PayloadError(problem)
    return OutboundRequest(target=target, profile=profile, voice=voice)


def refusal(request: OutboundRequest, allow: NumberList) -> str | None:
    """Why the target may not be called, or None. Only phone numbers cost money: ACS users pass."""
    if not request.is_pstn or allow.matches(request.target.phone_number):
        return None
    if not (allow.numbers or allow.prefixes):
        return (
            f"calling phone numbers is off: {allow.setting} is empty "
            "(set it to the numbers or +prefix* this deployment may call)"
        )
    return f"{request.target.masked()} is not on {allow.setting}"


@bp.function_name("start_call")
@bp.route(route="calls", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced("calls")
async def start_call(req: func.HttpRequest) -> func.HttpResponse:
    rt = runtime()
    s = rt.settings
    missing = s.unusable(NEEDS)
    if missing:
        log.error("cannot place calls: %s unusable", ", ".join(missing))
        return misconfigured(missing)
    try:
        request = parse_request(req.get_body(), s.profiles_dir)
    except PayloadError as exc:
        return error_response(exc.status, str(exc))
    shown_target = request.target.shown(rt.telemetry.show_number)
    reason = refusal(request, s.outbound_allow)
    if reason is not None:
        return _refused(rt, shown_target, 403, reason, why="not_on_allow_list")
    if request.is_pstn and s.phone_number is None:
        return error_response(
            409,
            "calling a phone number needs a caller id: set ACS_PHONE_NUMBER to a number of this ACS resource",
        )
    wait = rt.outbound_calls.acquire()
    if wait:
        retry_after = max(1, math.ceil(wait))
        return _refused(
            rt,
            shown_target,
            429,
            f"too many calls: this instance places at most {s.outbound_calls_per_minute} per minute "
            f"(OUTBOUND_CALLS_PER_MINUTE); retry in {retry_after} s",
            why="rate_limited",
            headers={"Retry-After": str(retry_after)},
        )

    caller_id = PhoneNumberIdentifier(s.phone_number) if request.is_pstn and s.phone_number else None
    try:
        created = await acs_request(
            rt.call_automation().create_call(
                sdk_identifier(request.target),
                callback_url(s, caller=shown_target),
                source_caller_id_number=caller_id,
                media_streaming=media_streaming(
                    s, profile=request.profile, voice=request.voice, caller=shown_target
                ),
                operation_context=OPERATION_CONTEXT,
            ),
            timeout=ACS_TIMEOUT_SECONDS,
            operation="create_call",
            telemetry=rt.telemetry,
            target=rt.acs_host,
        )
    except AcsError as exc:
        log.error("could not call %s: %s", request.target.masked(), exc)
        rt.telemetry.event("OutboundCallFailed", target=shown_target, error=str(exc))
        return acs_failed(exc, "ACS refused the call")

    ids = CallIds(
        correlation_id=created.correlation_id or "",
        call_connection_id=created.call_connection_id or "",
        server_call_id=created.server_call_id or "",
        caller=shown_target,
    )
    CURRENT_CALL.set(ids)
    rt.telemetry.event(
        "OutboundCallPlaced",
        ids,
        target=shown_target,
        profile=request.profile or "default",
        voice=request.voice or "default",
    )
    dims = ids.dims()
    log.info(
        "calling %s: correlation_id=%s call_connection_id=%s profile=%s voice=%s",
        request.target.masked(),
        created.correlation_id,
        created.call_connection_id,
        request.profile or "(default)",
        request.voice or "(default)",
        extra=dims,
    )
    return json_response(
        {"callConnectionId": created.call_connection_id, "target": request.target.masked()}, status=202
    )


def _refused(
    rt: Runtime,
    shown_target: str,
    status: int,
    message: str,
    *,
    why: str,
    headers: dict[str, str] | None = None,
) -> func.HttpResponse:
    log.warning("refused outbound call: %s", message)
    rt.telemetry.event("OutboundCallRefused", reason=why, target=shown_target)
    return error_response(status, message, headers=headers)
