"""Posting Twilio webhooks to the registered functions, signed the way Twilio documents it.

The signer here is written out from Twilio's documentation, independently of `common.twilio_auth`,
and pinned to Twilio's published example (see test_twilio_voice), so the functions are checked
against the documented algorithm rather than against themselves.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

import azure.functions as func
import pytest

from all_in_one.functions_host import registered_functions
from tests.functions.conftest import CALLBACK_HOST, CALLER, MEDIA_HOST, OUR_NUMBER, route_of

ACCOUNT_SID = "AC" + "0a1b2c3d4e5f6789" * 2
AUTH_TOKEN = "9f86d081884c7d659a2feaa0c55ad015"  # the shape of an Auth Token, not a real one
CALL_SID = "CA" + "0123456789abcdef" * 2
STREAM_SID = "MZ" + "fedcba9876543210" * 2
# What the function sees behind a proxy or the Functions front end: not the URL Twilio called.
INTERNAL_HOST = "http://localhost:7071"

Fields = list[tuple[str, str]]


def reference_signature(auth_token: str, url: str, fields: Iterable[tuple[str, str]]) -> str:
    """X-Twilio-Signature as Twilio's webhooks-security page describes it: the URL, then each
    parameter name followed by its value, names sorted; HMAC-SHA1 with the Auth Token; base64."""
    values: dict[str, set[str]] = {}
    for name, value in fields:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def public_url(function: str, query: str = "") -> str:
    return f"{CALLBACK_HOST}/api/{route_of(function)}" + (f"?{query}" if query else "")


def voice_fields(**overrides: str | None) -> Fields:
    """A real inbound call's webhook (twilio-openai.md §1.1), blank values and all."""
    fields: dict[str, str | None] = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": CALL_SID,
        "CallStatus": "ringing",
        "Called": "",
        "CalledCountry": "US",
        "Caller": CALLER,
        "CallerCountry": "JP",
        "Direction": "inbound",
        "From": CALLER,
        "FromCountry": "JP",
        "To": OUR_NUMBER,
        "ToCountry": "US",
    }
    fields.update(overrides)
    return [(name, value) for name, value in fields.items() if value is not None]


def stream_status_fields(**overrides: str | None) -> Fields:
    fields: dict[str, str | None] = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": CALL_SID,
        "StreamSid": STREAM_SID,
        "StreamName": STREAM_SID,
        "StreamEvent": "stream-started",
        "Timestamp": "2026-11-22T01:02:03.456Z",
    }
    fields.update(overrides)
    return [(name, value) for name, value in fields.items() if value is not None]


async def post_twilio(
    function: str,
    fields: Fields,
    *,
    body: bytes | None = None,
    query: str = "",
    signature: str | None = None,
    signed_url: str | None = None,
    auth_token: str = AUTH_TOKEN,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> func.HttpResponse:
    """POST `fields` (or a raw `body`) as Twilio would, signed over the public URL unless told
    otherwise; the function itself sees an internal URL, as behind a proxy."""
    if signature is None:
        signature = reference_signature(auth_token, signed_url or public_url(function, query), fields)
    request = func.HttpRequest(
        method,
        f"{INTERNAL_HOST}/api/{route_of(function)}" + (f"?{query}" if query else ""),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
            "X-Twilio-Signature": signature,
            **(headers or {}),
        },
        params={},
        route_params={},
        body=urlencode(fields).encode() if body is None else body,
    )
    response: func.HttpResponse = await registered_functions()[function].handler(request)
    return response


@pytest.fixture
def twilio_env(clean_env: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Twilio-only control plane: no ACS setting is needed for its webhooks."""
    for name, value in {
        "CALLBACK_URI_HOST": CALLBACK_HOST,
        "MEDIA_HOST_URL": MEDIA_HOST,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    }.items():
        clean_env.setenv(name, value)
    return clean_env
