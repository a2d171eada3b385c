"""The door of every Twilio webhook: method, settings, `X-Twilio-Signature` over the form body, and
the account, in that order, before anything is acted on (twilio-openai.md §1, §2).

Anonymous at the Functions level, because Twilio cannot send a function key: the signature is the
authentication. It is checked over the public URL Twilio was given, `CALLBACK_URI_HOST` + the route
(+ the query string the request carries), never over the Host header, which a proxy, a tunnel or
the Functions front end may have rewritten (§2.3). A refused request leaves only an audit event,
`TwilioWebhookRefused`, with no call ids: an unverified CallSid must not write into a real call's
audit trail.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import unquote_plus

import azure.functions as func

from common.twilio_auth import sid_pattern, valid_twilio_signature

from .http import error_response, misconfigured
from .payload import PayloadError
from .runtime import Runtime
from .settings import TWILIO, TwilioSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

PROVIDER = "twilio"  # the `provider` property of every audit event about a Twilio call
VOICE_ROUTE = "twilio/voice"
STREAM_STATUS_ROUTE = "twilio/stream-status"
# GET and HEAD are routed too, so that they get a 405 saying what to fix (a number set to HTTP GET,
# or `curl -I` as the Twilio setup guide checks) rather than the host's bare 404.
METHODS = ["POST", "GET", "HEAD"]

FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024  # a call webhook is 1-2 KB of about 30 fields
MAX_FIELDS = 256
MAX_VALUE_CHARS = 256  # ids, numbers, client:/sip: identities, event names
# Twilio's HMAC-SHA256 "SharedKey" signing (Webhooks Rules) announces itself with this header; we
# check Auth Token signatures only (§2.2), and say so rather than calling the signature bad.
SHARED_KEY_SIGNING_HEADER = "X-Twilio-Webhooks-Signature-Settings"

RefusalReason = Literal["missing_signature", "shared_key_signing", "bad_signature", "wrong_account"]


@dataclass(frozen=True)
class TwilioForm:
    """A webhook's form fields: every value of every name, blank values kept (they are signed too)."""

    params: dict[str, list[str]]

    def one(self, name: str, *, max_chars: int = MAX_VALUE_CHARS) -> str | None:
        """The field's single value, or None when absent or blank. Complaints name the field only."""
        values = self.params.get(name, [])
        if len(values) > 1:
            raise PayloadError(f"{name} is sent more than once")
        value = values[0] if values else ""
        if len(value) > max_chars:
            raise PayloadError(f"{name} is longer than {max_chars} characters")
        if not value.isprintable():  # would forge log lines, and TwiML cannot carry most of them
            raise PayloadError(f"{name} holds control or unprintable characters")
        return value or None

    def required(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.one(name)
        if value is None or not pattern.fullmatch(value):
            raise PayloadError(f"{name} must be {what}")
        return value

    def sid(self, name: str, prefix: str) -> str:
        return self.required(name, re.compile(sid_pattern(prefix)), f"{prefix} followed by 32 hex digits")


def parse_form(body: bytes, content_type: str) -> TwilioForm:
    """The fields of an `application/x-www-form-urlencoded` body, read strictly."""
    if len(body) > MAX_FORM_BYTES:
        raise PayloadError(f"body is larger than {MAX_FORM_BYTES} bytes", status=413)
    if content_type.partition(";")[0].strip().lower() != FORM:
        raise PayloadError(f"Content-Type must be {FORM}", status=415)
    try:
        text = body.decode("ascii")  # percent-encoded: anything else was not sent by Twilio
    except UnicodeDecodeError:
        raise PayloadError("body holds bytes that are not percent-encoded") from None
    fields = text.split("&") if text else []
    if len(fields) > MAX_FIELDS:
        raise PayloadError(f"body has more than {MAX_FIELDS} fields")
    params: dict[str, list[str]] = {}
    for position, field in enumerate(fields, start=1):
        raw_name, sep, raw_value = field.partition("=")
        if not sep or not raw_name:
            raise PayloadError(f"field #{position} is not name=value")
        try:
            name, value = unquote_plus(raw_name, errors="strict"), unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise PayloadError(f"field #{position} is not UTF-8 once percent-decoded") from None
        params.setdefault(name, []).append(value)
    return TwilioForm(params)


def public_url(callback_host: str, route: str) -> str:
    """The URL Twilio is configured with for a route (host.json keeps the `api` route prefix)."""
    return f"{callback_host}/api/{route}"


def verified(
    rt: Runtime,
    req: func.HttpRequest,
    route: str,
    needs: tuple[str, ...],
    read: Callable[[TwilioForm], T],
) -> tuple[TwilioSettings, T] | func.HttpResponse:
    """The Twilio settings and `read(form)` of a genuine webhook from our account, or the response
    refusing the request. `read` may raise PayloadError: a signed form lacking what the route needs
    is the sender's mistake too (4xx)."""
    if req.method.upper() != "POST":
        return error_response(
            405,
            "Twilio webhooks are POSTs: set the webhook's method to HTTP POST in the Twilio console",
            headers={"Allow": "POST"},
        )
    s = rt.settings
    missing, twilio = s.unusable((*TWILIO, *needs), required=TWILIO), s.twilio
    if missing or twilio is None:  # twilio is None only when a TWILIO_ setting is missing or bad
        log.error("cannot accept Twilio webhooks on %s: %s unusable", route, ", ".join(missing))
        return misconfigured(missing)
    signature = req.headers.get("X-Twilio-Signature")
    if not signature:
        return _refuse(rt, route, "missing_signature")
    if req.headers.get(SHARED_KEY_SIGNING_HEADER):
        return _refuse(rt, route, "shared_key_signing")
    try:
        form = parse_form(req.get_body(), req.headers.get("Content-Type", ""))
        query = req.url.partition("?")[2]  # proxies rewrite the host, not the query Twilio signed
        url = public_url(s.callback_host, route) + (f"?{query}" if query else "")
        if not valid_twilio_signature(twilio.auth_token, url, form.params, signature):
            log.warning("the webhook URL configured in Twilio must be exactly %s", url)
            return _refuse(rt, route, "bad_signature")
        if form.one("AccountSid") != twilio.account_sid:  # signed by our token, for another account?
            return _refuse(rt, route, "wrong_account")
        return twilio, read(form)
    except PayloadError as exc:
        log.warning("refused Twilio webhook on %s: %s", route, exc)
        return error_response(exc.status, str(exc))


def _refuse(rt: Runtime, route: str, reason: RefusalReason) -> func.HttpResponse:
    log.warning("refused Twilio webhook on %s: %s", route, reason)
    rt.telemetry.event("TwilioWebhookRefused", provider=PROVIDER, route=route, reason=reason)
    return error_response(403, f"Twilio signature refused ({reason})")
