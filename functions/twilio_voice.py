"""POST /api/twilio/voice: a Twilio number's "A call comes in" webhook, answered with TwiML.

Past the door (`twilio_webhook.verified`), the caller is screened like an ACS caller
(CALLER_ALLOW_LIST / CALLER_DENY_LIST) and a refused one gets `<Reject/>`. Otherwise the call is
bridged to the media host with `<Connect><Stream>`. Per-call data rides in `<Parameter>`s, since
Twilio refuses a query string on the stream URL (31920); among them a short-lived token bound to the
CallSid, which the media host checks on the stream's `start` message (the signature on the upgrade
is the same for every call, so it cannot tell which call a socket belongs to). The CallSid is the
call's correlation id in the audit trail.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import azure.functions as func

from common.identifiers import Identifier, parse_target
from common.phone import mask_phone
from common.settings_reader import E164
from common.telemetry import CallIds
from common.twilio_auth import mint_call_token
from common.twiml import CONTENT_TYPE, connect_stream, reject

from .http import CURRENT_CALL, blueprint, traced
from .payload import PayloadError
from .runtime import runtime
from .screening import screen
from .twilio_webhook import (
    METHODS,
    PROVIDER,
    STREAM_STATUS_ROUTE,
    VOICE_ROUTE,
    TwilioForm,
    public_url,
    verified,
)

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = (
    "CALLBACK_URI_HOST",
    "MEDIA_HOST_URL",
    "AOAI_PROFILES_DIR",
    "AOAI_INBOUND_PROFILE",
    "CALLER_ALLOW_LIST",
    "CALLER_DENY_LIST",
)
CALL_TOKEN_TTL_SECONDS = 120  # Twilio opens the stream as soon as it reads the TwiML
AUDIO_FORMAT = "audio/x-mulaw"  # what every Twilio media stream carries (8 kHz mono)


@dataclass(frozen=True)
class TwilioCall:
    call_sid: str
    caller: Identifier
    to: Identifier


@bp.function_name("twilio_voice")
@bp.route(route=VOICE_ROUTE, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@traced("twilio-voice")
async def twilio_voice(req: func.HttpRequest) -> func.HttpResponse:
    rt = runtime()
    checked = verified(rt, req, VOICE_ROUTE, NEEDS, _read_call)
    if isinstance(checked, func.HttpResponse):
        return checked
    twilio, call = checked
    s, t = rt.settings, rt.telemetry
    ids = CallIds(correlation_id=call.call_sid, caller=call.caller.shown(t.show_number))
    CURRENT_CALL.set(ids)
    dims = ids.dims()
    who = f"Twilio call {call.call_sid} from {call.caller.masked()} to {call.to.masked()}"
    t.event("IncomingCallReceived", ids, provider=PROVIDER, to=call.to.shown(t.show_number))

    reason = screen(call.caller, s.caller_allow, s.caller_deny)
    if reason is not None:
        t.event("IncomingCallRejected", ids, provider=PROVIDER, reason=reason, reject_reason="rejected")
        log.warning("rejected %s: %s", who, reason, extra=dims)
        return _twiml(reject())

    token = mint_call_token(
        twilio.auth_token, call.call_sid, now=time.time(), ttl_seconds=CALL_TOKEN_TTL_SECONDS
    )
    parameters = {"profile": s.inbound_profile} if s.inbound_profile else {}
    parameters |= {"caller": ids.caller, "callToken": token}
    document = connect_stream(
        twilio.stream_url, parameters, status_callback=public_url(s.callback_host, STREAM_STATUS_ROUTE)
    )
    t.event(
        "CallAnswered",
        ids,
        provider=PROVIDER,
        profile=s.inbound_profile or "default",
        audio_format=AUDIO_FORMAT,
    )
    log.info(
        "answered %s: media stream to the media host, profile=%s",
        who,
        s.inbound_profile or "(default)",
        extra=dims,
    )
    return _twiml(document)


def _read_call(form: TwilioForm) -> TwilioCall:
    return TwilioCall(form.sid("CallSid", "CA"), _identity(form, "From"), _identity(form, "To"))


def _identity(form: TwilioForm, name: str) -> Identifier:
    value = form.one(name)
    if value is None:
        raise PayloadError(f"{name} is missing")
    if E164.fullmatch(value):
        return parse_target(value)
    # anonymous, client:<name>, sip:<uri>, a number Twilio could not make E.164: nothing to screen
    # on; shown as it is, or masked whenever it holds digits (whatever AUDIT_UNMASKED_NUMBERS says).
    return Identifier("unknown", mask_phone(value) if any(c.isdigit() for c in value) else value)


def _twiml(document: str) -> func.HttpResponse:
    return func.HttpResponse(document, status_code=200, mimetype=CONTENT_TYPE)
