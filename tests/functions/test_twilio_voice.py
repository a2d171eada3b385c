"""POST /api/twilio/voice: signature door, screening, the TwiML that bridges the call, its audit trail."""

from __future__ import annotations

import json
import logging
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import quote, urlencode

import azure.functions as func
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from all_in_one.functions_host import FunctionKeys, add_function_routes
from common.twilio_auth import CallTokenRejected, verify_call_token
from emulators.twilio.emulator import TwilioEmulator
from functions.settings import ControlSettings
from functions.twilio_voice import CALL_TOKEN_TTL_SECONDS
from functions.twilio_webhook import MAX_FORM_BYTES
from tests.functions.conftest import CALLBACK_HOST, CALLER, OUR_NUMBER, audit_events, body_of, invoke
from tests.functions.twilio_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    CALL_SID,
    INTERNAL_HOST,
    Fields,
    post_twilio,
    public_url,
    reference_signature,
    twilio_env,  # noqa: F401 - a fixture
    voice_fields,
)
from tests.strategies import nasty_text
from tests.test_twilio_auth import DOC_PARAMS, DOC_SIGNATURE, DOC_TOKEN, DOC_URL

STREAM_URL = "wss://media.example/ws/twilio"
MASKED_CALLER = "+81******5678"

pytestmark = pytest.mark.usefixtures("twilio_env")


@pytest.fixture(autouse=True)
def audit_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def stream_of(response: func.HttpResponse) -> ET.Element:
    assert response.status_code == 200, response.get_body()
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_body())
    assert root.tag == "Response"
    [connect] = root
    [stream] = connect
    assert (connect.tag, stream.tag) == ("Connect", "Stream")
    return stream


def parameters_of(stream: ET.Element) -> list[tuple[str, str]]:
    assert all(p.tag == "Parameter" for p in stream)
    return [(p.get("name", ""), p.get("value", "")) for p in stream]


def assert_refused(
    response: func.HttpResponse, caplog: pytest.LogCaptureFixture, reason: str, route: str = "twilio/voice"
) -> None:
    assert response.status_code == 403
    assert response.mimetype == "application/json"  # no TwiML: Twilio is told nothing to do
    assert reason in body_of(response)["error"]
    [refused] = audit_events(caplog, "TwilioWebhookRefused")
    assert refused == {
        "event": "TwilioWebhookRefused",
        "plane": "functions",
        "provider": "twilio",
        "route": route,
        "reason": reason,
    }
    for name in ("IncomingCallReceived", "IncomingCallRejected", "CallAnswered", "TwilioStreamStatus"):
        assert audit_events(caplog, name) == []


# -- the signature ----------------------------------------------------------------------------------


def test_the_reference_signer_reproduces_twilios_published_example() -> None:
    assert reference_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS.items()) == DOC_SIGNATURE


async def test_twilios_published_parameters_and_query_are_accepted() -> None:
    # The documented example's parameters and query string, on our route (its CallSid is not a real one).
    fields = [*DOC_PARAMS.items(), ("AccountSid", ACCOUNT_SID)]
    fields[0] = ("CallSid", CALL_SID)
    response = await post_twilio("twilio_voice", fields, query="foo=1&bar=2")
    assert response.status_code == 200, response.get_body()


async def test_the_signature_is_checked_over_the_public_url_not_the_host_the_function_sees(
    audit_log: pytest.LogCaptureFixture,
) -> None:
    # Signed over the URL the request reached the function with (as code reading Host would).
    internal = f"{INTERNAL_HOST}/api/twilio/voice"
    response = await post_twilio("twilio_voice", voice_fields(), signed_url=internal)
    assert_refused(response, audit_log, "bad_signature")
    assert f"must be exactly {CALLBACK_HOST}/api/twilio/voice" in audit_log.text


@pytest.mark.parametrize(
    "signed_url",
    [
        f"{CALLBACK_HOST}/api/twilio/voice/",
        f"{CALLBACK_HOST}/api/twilio/stream-status",  # another route's signature is not this one's
        "http://functions.example/api/twilio/voice",  # the scheme is signed
        f"{CALLBACK_HOST}/api/twilio/voice?x=1",  # a query Twilio did not send
    ],
)
async def test_a_signature_over_another_url_is_refused(
    audit_log: pytest.LogCaptureFixture, signed_url: str
) -> None:
    response = await post_twilio("twilio_voice", voice_fields(), signed_url=signed_url)
    assert_refused(response, audit_log, "bad_signature")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda fields: [(n, "+819099999999" if n == "From" else v) for n, v in fields],
        lambda fields: [*fields, ("Extra", "")],  # even a blank value is signed
        lambda fields: [(n, v) for n, v in fields if n != "Called"],
    ],
    ids=["changed", "added", "removed"],
)
async def test_a_tampered_form_is_refused(audit_log: pytest.LogCaptureFixture, tamper: object) -> None:
    fields = voice_fields()
    signature = reference_signature(AUTH_TOKEN, public_url("twilio_voice"), fields)
    assert callable(tamper)
    response = await post_twilio("twilio_voice", tamper(fields), signature=signature)
    assert_refused(response, audit_log, "bad_signature")


async def test_another_accounts_token_or_no_signature_is_refused(audit_log: pytest.LogCaptureFixture) -> None:
    other_token = "0" * 32
    assert_refused(
        await post_twilio("twilio_voice", voice_fields(), auth_token=other_token), audit_log, "bad_signature"
    )
    audit_log.clear()
    assert_refused(
        await post_twilio("twilio_voice", voice_fields(), signature=""), audit_log, "missing_signature"
    )


async def test_a_signed_webhook_for_another_account_is_refused(audit_log: pytest.LogCaptureFixture) -> None:
    fields = voice_fields(AccountSid="AC" + "f" * 32)
    assert_refused(await post_twilio("twilio_voice", fields), audit_log, "wrong_account")
    audit_log.clear()
    assert_refused(
        await post_twilio("twilio_voice", voice_fields(AccountSid=None)), audit_log, "wrong_account"
    )


async def test_shared_key_signing_is_named_not_called_bad(audit_log: pytest.LogCaptureFixture) -> None:
    headers = {"X-Twilio-Webhooks-Signature-Settings": "key=KS00,algorithm=HMAC_SHA256"}
    response = await post_twilio("twilio_voice", voice_fields(), headers=headers)
    assert_refused(response, audit_log, "shared_key_signing")


async def test_the_default_port_may_be_in_the_signed_url() -> None:
    signed = public_url("twilio_voice").replace(".example/", ".example:443/")
    response = await post_twilio("twilio_voice", voice_fields(), signed_url=signed)
    assert response.status_code == 200


# -- the answer -------------------------------------------------------------------------------------


async def test_a_call_is_bridged_to_the_media_host(audit_log: pytest.LogCaptureFixture) -> None:
    before = time.time()
    response = await post_twilio("twilio_voice", voice_fields())
    stream = stream_of(response)
    assert stream.attrib == {
        "url": STREAM_URL,
        "statusCallback": f"{CALLBACK_HOST}/api/twilio/stream-status",
        "statusCallbackMethod": "POST",
    }
    parameters = parameters_of(stream)
    assert [name for name, _ in parameters] == ["caller", "callToken"]  # no profile configured
    values = dict(parameters)
    assert values["caller"] == MASKED_CALLER

    token = values["callToken"]
    assert AUTH_TOKEN not in response.get_body().decode()
    verify_call_token(AUTH_TOKEN, token, CALL_SID, now=time.time())
    verify_call_token(AUTH_TOKEN, token, CALL_SID, now=before + CALL_TOKEN_TTL_SECONDS - 1)
    with pytest.raises(CallTokenRejected, match="expired"):
        verify_call_token(AUTH_TOKEN, token, CALL_SID, now=time.time() + CALL_TOKEN_TTL_SECONDS + 1)
    with pytest.raises(CallTokenRejected, match="wrong_call"):
        verify_call_token(AUTH_TOKEN, token, "CA" + "1" * 32, now=time.time())

    call = {"plane": "functions", "correlation_id": CALL_SID, "caller": MASKED_CALLER, "provider": "twilio"}
    assert audit_events(audit_log, "IncomingCallReceived") == [
        {"event": "IncomingCallReceived", **call, "to": "+14*****0100"}
    ]
    assert audit_events(audit_log, "CallAnswered") == [
        {"event": "CallAnswered", **call, "profile": "default", "audio_format": "audio/x-mulaw"}
    ]
    assert CALLER not in audit_log.text and OUR_NUMBER not in audit_log.text


async def test_profile_and_media_host_path_reach_the_stream(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AOAI_INBOUND_PROFILE", "restaurant")
    clean_env.setenv("MEDIA_HOST_URL", "https://media.example/voice/")  # as copied from the portal
    stream = stream_of(await post_twilio("twilio_voice", voice_fields()))
    assert stream.get("url") == "wss://media.example/voice/ws/twilio"
    assert [name for name, _ in parameters_of(stream)] == ["profile", "caller", "callToken"]
    assert dict(parameters_of(stream))["profile"] == "restaurant"


async def test_unmasked_numbers_when_asked(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUDIT_UNMASKED_NUMBERS", "true")
    stream = stream_of(await post_twilio("twilio_voice", voice_fields()))
    assert dict(parameters_of(stream))["caller"] == CALLER


@pytest.mark.parametrize(
    ("caller", "shown"),
    [
        ("anonymous", "anonymous"),
        ("client:alice", "client:alice"),
        ("sip:+14155550123@pbx.example", "*" * 28),  # an identity holding digits: hidden
        ("0312345678", "+03****5678"),  # a number Twilio could not make E.164: masked like one
    ],
)
async def test_callers_without_an_e164_number_are_answered_and_never_shown_unmasked(
    audit_log: pytest.LogCaptureFixture, caller: str, shown: str
) -> None:
    stream = stream_of(await post_twilio("twilio_voice", voice_fields(From=caller, Caller=caller)))
    assert dict(parameters_of(stream))["caller"] == shown
    [received] = audit_events(audit_log, "IncomingCallReceived")
    assert received["caller"] == shown


# -- screening --------------------------------------------------------------------------------------


def assert_rejected(response: func.HttpResponse) -> None:
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_body())
    assert [(child.tag, child.attrib) for child in root] == [("Reject", {"reason": "rejected"})]


async def test_deny_list_rejects_like_acs_calls(
    clean_env: pytest.MonkeyPatch, audit_log: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("CALLER_DENY_LIST", "+8190*")
    response = await post_twilio("twilio_voice", voice_fields())
    assert_rejected(response)
    [rejected] = audit_events(audit_log, "IncomingCallRejected")
    assert rejected == {
        "event": "IncomingCallRejected",
        "plane": "functions",
        "correlation_id": CALL_SID,
        "caller": MASKED_CALLER,
        "provider": "twilio",
        "reason": f"caller {MASKED_CALLER} is on CALLER_DENY_LIST",
        "reject_reason": "rejected",
    }
    assert audit_events(audit_log, "CallAnswered") == []
    assert CALLER not in audit_log.text


@pytest.mark.parametrize(
    ("caller", "answered"), [(CALLER, True), ("+14255550123", False), ("anonymous", False)]
)
async def test_allow_list_lets_only_listed_callers_through(
    clean_env: pytest.MonkeyPatch, caller: str, answered: bool
) -> None:
    clean_env.setenv("CALLER_ALLOW_LIST", f"{CALLER},+4930*")
    response = await post_twilio("twilio_voice", voice_fields(From=caller))
    if answered:
        stream_of(response)
    else:
        assert_rejected(response)


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""}, ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]),
        ({"TWILIO_AUTH_TOKEN": ""}, ["TWILIO_AUTH_TOKEN"]),
        ({"TWILIO_AUTH_TOKEN": "not-the-token"}, ["TWILIO_AUTH_TOKEN"]),
        ({"TWILIO_ACCOUNT_SID": "SK" + "0" * 32}, ["TWILIO_ACCOUNT_SID"]),
        ({"CALLBACK_URI_HOST": ""}, ["CALLBACK_URI_HOST"]),
        ({"MEDIA_HOST_URL": "wss://media.example/?region=eu"}, ["MEDIA_HOST_URL"]),  # 31920
        ({"MEDIA_HOST_URL": "ws://media.example"}, ["MEDIA_HOST_URL"]),
        ({"CALLER_DENY_LIST": "0301234567"}, ["CALLER_DENY_LIST"]),
    ],
)
async def test_unusable_settings_answer_503_naming_them(
    clean_env: pytest.MonkeyPatch, audit_log: pytest.LogCaptureFixture, env: dict[str, str], named: list[str]
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    response = await post_twilio("twilio_voice", voice_fields())
    assert response.status_code == 503
    assert body_of(response)["error"] == (
        f"misconfigured: {', '.join(named)} missing or invalid (details in the function log)"
    )
    assert "not-the-token" not in audit_log.text
    assert audit_events(audit_log, "IncomingCallReceived") == []


def test_twilio_settings_are_validated_without_quoting_them() -> None:
    settings = ControlSettings.from_env(
        {
            "TWILIO_ACCOUNT_SID": "ACnot-a-sid",
            "TWILIO_AUTH_TOKEN": "secret-but-not-a-token",
            "MEDIA_HOST_URL": "wss://media.example",
        }
    )
    assert settings.problems["TWILIO_ACCOUNT_SID"] == (
        "TWILIO_ACCOUNT_SID must be an Account SID (AC + 32 hex digits)"
    )
    assert settings.problems["TWILIO_AUTH_TOKEN"] == (
        "TWILIO_AUTH_TOKEN must be the account's Auth Token (32 hex digits)"
    )
    assert settings.twilio is None

    half = ControlSettings.from_env({"TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    assert half.problems["TWILIO_ACCOUNT_SID"] == (
        "TWILIO_ACCOUNT_SID is required for Twilio numbers (the other TWILIO_ setting is set)"
    )

    unset = ControlSettings.from_env({"MEDIA_HOST_URL": "ws://127.0.0.1:8000"})  # ACS-only: fine
    assert not {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "MEDIA_HOST_URL"} & unset.problems.keys()
    assert unset.twilio is None

    good = ControlSettings.from_env(
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "MEDIA_HOST_URL": "https://m.example",
        }
    )
    assert good.twilio is not None and good.twilio.stream_url == "wss://m.example/ws/twilio"
    assert AUTH_TOKEN not in repr(good)


async def test_health_shows_twilio_settings_as_booleans_only(clean_env: pytest.MonkeyPatch) -> None:
    response = await invoke("health", method="GET")
    text = response.get_body().decode()
    settings = json.loads(text)["settings"]
    assert settings["TWILIO_ACCOUNT_SID"] == {"present": True, "valid": True}
    assert settings["TWILIO_AUTH_TOKEN"] == {"present": True, "valid": True}
    assert AUTH_TOKEN not in text and AUTH_TOKEN[:8] not in text and ACCOUNT_SID not in text

    clean_env.setenv("TWILIO_AUTH_TOKEN", "x")
    from functions import runtime

    await runtime.reset()
    settings = body_of(await invoke("health", method="GET"))["settings"]
    assert settings["TWILIO_AUTH_TOKEN"] == {"present": True, "valid": False}


# -- malformed requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"CallSid", 400, "field #1 is not name=value"),
        (b"AccountSid=x&&From=1", 400, "field #2 is not name=value"),
        (b"=x", 400, "field #1 is not name=value"),
        (b"From=%FF%FE", 400, "field #1 is not UTF-8 once percent-decoded"),
        ("From=日本".encode(), 400, "body holds bytes that are not percent-encoded"),
        (b"a=1&" * 300, 400, "body has more than 256 fields"),
        (b"x" * (MAX_FORM_BYTES + 1), 413, f"body is larger than {MAX_FORM_BYTES} bytes"),
    ],
)
async def test_malformed_forms_are_400_saying_what(body: bytes, status: int, message: str) -> None:
    response = await post_twilio("twilio_voice", [], body=body)
    assert (response.status_code, body_of(response)["error"]) == (status, message)


async def test_a_body_that_is_not_a_form_is_415() -> None:
    response = await post_twilio("twilio_voice", voice_fields(), headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    assert body_of(response)["error"] == "Content-Type must be application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"CallSid": "CA1234567890ABCDE"}, "CallSid must be CA followed by 32 hex digits"),
        ({"CallSid": None}, "CallSid must be CA followed by 32 hex digits"),
        ({"From": None}, "From is missing"),
        ({"To": ""}, "To is missing"),
        ({"From": "+8190\n1234"}, "From holds control or unprintable characters"),
        ({"From": "x" * 257}, "From is longer than 256 characters"),
    ],
)
async def test_signed_forms_missing_what_a_call_needs_are_400(
    overrides: dict[str, str | None], message: str, audit_log: pytest.LogCaptureFixture
) -> None:
    response = await post_twilio("twilio_voice", voice_fields(**overrides))
    assert (response.status_code, body_of(response)) == (400, {"error": message})
    assert audit_events(audit_log, "IncomingCallReceived") == []


async def test_a_repeated_field_is_400() -> None:
    response = await post_twilio("twilio_voice", [*voice_fields(), ("CallSid", "CA" + "1" * 32)])
    assert (response.status_code, body_of(response)) == (400, {"error": "CallSid is sent more than once"})


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_get_is_405_saying_to_use_post(clean_env: pytest.MonkeyPatch, method: str) -> None:
    clean_env.delenv("TWILIO_AUTH_TOKEN")  # said before anything else, whatever the settings
    response = await post_twilio("twilio_voice", [], method=method, query=urlencode(voice_fields()))
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "HTTP POST" in body_of(response)["error"]


# -- never a 5xx ------------------------------------------------------------------------------------

FUZZ_HTTP = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def mutated_fields(draw: st.DrawFn) -> Fields:
    """A real call's form with values replaced by anything, names added, removed or repeated."""
    fields = voice_fields()
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(fields) - 1))
        action = draw(st.sampled_from(["replace", "remove", "add", "repeat"]))
        name, _ = fields[index]
        if action == "replace":
            fields[index] = (name, draw(nasty_text))
        elif action == "remove":
            del fields[index]
        elif action == "add":
            fields.append((draw(nasty_text), draw(nasty_text)))
        else:
            fields.append((name, draw(nasty_text)))
        if not fields:
            break
    return fields


def encode_form(fields: Fields) -> bytes:
    # Lone surrogates cannot be UTF-8: percent-encode them as the bytes Python would refuse to decode.
    return "&".join(
        f"{quote(n, safe='', errors='surrogatepass')}={quote(v, safe='', errors='surrogatepass')}"
        for n, v in fields
    ).encode()


@FUZZ_HTTP
@given(
    st.one_of(
        mutated_fields().map(lambda fields: (fields, encode_form(fields))),
        st.binary(max_size=300).map(lambda body: ([], body)),
        st.text(max_size=300).map(lambda text: ([], text.encode("utf-8", "surrogatepass"))),
    )
)
@example((voice_fields(), encode_form(voice_fields())))
async def test_arbitrary_forms_never_answer_5xx(case: tuple[Fields, bytes]) -> None:
    fields, body = case
    try:
        signature = reference_signature(AUTH_TOKEN, public_url("twilio_voice"), fields)
    except UnicodeEncodeError:  # a lone surrogate: nobody can sign it, so any header will do
        signature = "AAAA"
    response = await post_twilio("twilio_voice", fields, body=body, signature=signature)
    assert response.status_code == 200 or 400 <= response.status_code < 500, response.get_body()[:300]
    if response.status_code == 200:
        assert response.get_body().startswith(b'<?xml version="1.0" encoding="UTF-8"?><Response>')


# -- through the local gateway ----------------------------------------------------------------------


@pytest.fixture
async def gateway() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application()
    add_function_routes(app, keys=FunctionKeys("the-function-key"))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_the_local_gateway_serves_the_webhook_without_a_function_key(
    gateway: TestClient[web.Request, web.Application],
) -> None:
    fields = voice_fields()
    signature = reference_signature(AUTH_TOKEN, public_url("twilio_voice", "site=tokyo"), fields)
    response = await gateway.post(
        "/api/twilio/voice?site=tokyo",
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
    )
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(await response.read())
    assert root[0][0].get("url") == STREAM_URL

    # The gateway's own address is not what Twilio signs: a signature over it is refused.
    own = reference_signature(AUTH_TOKEN, str(gateway.make_url("/api/twilio/voice")), fields)
    refused = await gateway.post(
        "/api/twilio/voice",
        data=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": own},
    )
    assert refused.status == 403
    assert (await gateway.get("/api/twilio/voice")).status == 405
    head = await gateway.head("/api/twilio/voice")
    assert (head.status, head.headers["Allow"]) == (405, "POST")


async def test_the_twilio_emulator_is_answered_and_its_stream_status_recorded(
    clean_env: pytest.MonkeyPatch,
    gateway: TestClient[web.Request, web.Application],
    audit_log: pytest.LogCaptureFixture,
) -> None:
    # Twilio signs the URL it was given, here the gateway's own: so that is CALLBACK_URI_HOST.
    base = str(gateway.make_url("")).rstrip("/")
    clean_env.setenv("CALLBACK_URI_HOST", base)
    clean_env.setenv("MEDIA_HOST_URL", "wss://127.0.0.1:9")  # nothing listens there (discard port)
    async with TwilioEmulator(auth_token=AUTH_TOKEN, account_sid=ACCOUNT_SID) as twilio:
        call = await twilio.place_call(f"{base}/api/twilio/voice", from_=CALLER, to=OUR_NUMBER)
        await call.wait_ended()
    assert [error.code for error in call.errors] == [31901]  # the stream could not connect
    assert [(c.event, c.status) for c in call.stream_callbacks] == [("stream-error", 204)]
    assert [e["correlation_id"] for e in audit_events(audit_log, "CallAnswered")] == [call.sid]
    [status] = audit_events(audit_log, "TwilioStreamStatus")
    assert (status["correlation_id"], status["stream_event"], status["error"]) == (
        call.sid,
        "stream-error",
        "connection error",
    )
