"""POST /api/token: a new ACS user and a VoIP access token for it, for a softphone (the ACS Calling SDK).

Answers 200 `{"userId": "8:acs:...", "token": "...", "expiresOn": "<ISO 8601>"}`. A token lets its
holder place and take calls as that user, so the route takes a function key (never anonymous), each
issue is audited (`AcsUserIssued`, never the token), and the token lives the service's minimum
hour: the page asks again rather than holding a long-lived secret. The body is empty or `{}`: who
the user is and what it may do are not the client's to choose.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from common.acs_requests import AcsError, acs_request

from .http import acs_failed, blueprint, error_response, json_response, misconfigured, traced
from .payload import PayloadError, decode_json
from .runtime import runtime
from .settings import ACS_CLIENT

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = ACS_CLIENT
SCOPES = ["voip"]
TOKEN_LIFETIME = timedelta(hours=1)
ACS_TIMEOUT_SECONDS = 10.0


def parse_request(body: bytes) -> None:
    """Refuse anything but an empty body or `{}`."""
    if not body.strip():
        return
    value = decode_json(body)
    if not isinstance(value, dict):
        raise PayloadError("body must be empty or {}")
    if value:
        names = ", ".join(sorted(name[:40] for name in value)[:3]) + (", ..." if len(value) > 3 else "")
        raise PayloadError(f"unknown field(s): {names}; this route takes none (body empty or {{}})")


@bp.function_name("issue_token")
@bp.route(route="token", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@traced("token")
async def issue_token(req: func.HttpRequest) -> func.HttpResponse:
    rt = runtime()
    missing = rt.settings.unusable(NEEDS)
    if missing:
        log.error("cannot issue ACS users: %s unusable", ", ".join(missing))
        return misconfigured(missing)
    try:
        parse_request(req.get_body())
    except PayloadError as exc:
        return error_response(exc.status, str(exc))
    try:
        user, token = await acs_request(
            rt.identity().create_user_and_token(scopes=SCOPES, token_expires_in=TOKEN_LIFETIME),
            operation="create_user_and_token",
            telemetry=rt.telemetry,
            timeout=ACS_TIMEOUT_SECONDS,
            target=rt.acs_host,
        )
    except AcsError as exc:
        log.error("could not issue an ACS user: %s", exc)
        return acs_failed(exc, "ACS refused to issue a user")
    # ACS's ISO 8601 string, which the SDK passes through (its AccessToken annotates an epoch int).
    expires_on = str(token.expires_on)
    rt.telemetry.event("AcsUserIssued", user_id=user.raw_id, expires_on=expires_on)
    log.info("issued ACS user %s, its token valid until %s", user.raw_id, expires_on)
    return json_response({"userId": user.raw_id, "token": token.token, "expiresOn": expires_on})
