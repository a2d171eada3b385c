"""Twilio's request signature (from its published vector) and our per-call token (no sockets)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import azure.functions as func
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict, MultiDictProxy

from common.twilio_auth import (
    MAX_CALL_TOKEN_CHARS,
    CallTokenRejected,
    mint_call_token,
    twilio_signature,
    valid_twilio_signature,
    verify_call_token,
)

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)

# Twilio's published example (webhooks-security; twilio-openai.md §2.1.4).
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOC_SIGNATURE = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="

AUTH_TOKEN = "5f4dcc3b5aa765d61d8327deb882cf99"  # the shape of a real auth token, not a real one
CALL_SID = "CA" + "0123456789abcdef" * 2
OTHER_CALL_SID = "CA" + "fedcba9876543210" * 2
NOW = 1_790_000_000.0


def test_twilios_published_vector() -> None:
    assert twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert valid_twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_any_change_to_what_was_signed_fails() -> None:
    assert not valid_twilio_signature("12346", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    assert not valid_twilio_signature(DOC_TOKEN, DOC_URL + "&baz=3", DOC_PARAMS, DOC_SIGNATURE)
    assert not valid_twilio_signature(DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Digits": "1235"}, DOC_SIGNATURE)
    assert not valid_twilio_signature(DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Extra": ""}, DOC_SIGNATURE)
    assert not valid_twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE.lower())
    assert not valid_twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, "")


def test_list_values_and_every_multidict_sign_alike() -> None:
    as_lists = {name: [value] for name, value in DOC_PARAMS.items()}
    assert twilio_signature(DOC_TOKEN, DOC_URL, as_lists) == DOC_SIGNATURE
    assert twilio_signature(DOC_TOKEN, DOC_URL, MultiDictProxy(MultiDict(DOC_PARAMS))) == DOC_SIGNATURE


def test_what_the_functions_host_parses_validates() -> None:
    body = "&".join(f"{name}={value.replace('+', '%2B')}" for name, value in DOC_PARAMS.items())
    request = func.HttpRequest(
        method="POST",
        url=DOC_URL,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        body=body.encode(),
    )
    assert valid_twilio_signature(DOC_TOKEN, DOC_URL, request.form, DOC_SIGNATURE)


def test_a_repeated_name_signs_each_distinct_value_in_order() -> None:
    # twilio 9.13.0's validator: for each sorted name, its sorted set of values.
    pairs = MultiDict([("B", "x"), ("A", "2"), ("A", "1"), ("A", "2")])
    signed = twilio_signature(AUTH_TOKEN, "https://h.example/v", pairs)
    assert signed == twilio_signature(AUTH_TOKEN, "https://h.example/vA1A2Bx", {})
    assert signed == twilio_signature(AUTH_TOKEN, "https://h.example/v", {"B": ["x"], "A": ["2", "1", "2"]})


def test_empty_values_are_signed() -> None:
    # Twilio sends `Called=` and signs it: dropping blank values breaks the signature.
    with_blank = twilio_signature(AUTH_TOKEN, "https://h.example/v", {"Called": "", "To": "+1"})
    assert with_blank == twilio_signature(AUTH_TOKEN, "https://h.example/vCalledTo+1", {})
    assert not valid_twilio_signature(AUTH_TOKEN, "https://h.example/v", {"To": "+1"}, with_blank)


def test_names_sort_by_code_point_and_unicode_is_utf8() -> None:
    params = {"b": "é", "B": "日本", "a": "🙂"}
    assert twilio_signature(AUTH_TOKEN, "https://h.example/ü", params) == twilio_signature(
        AUTH_TOKEN, "https://h.example/üB日本a🙂bé", {}
    )


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://h.example/v?x=1", "https://h.example:443/v?x=1"),
        ("https://h.example:443/v?x=1", "https://h.example/v?x=1"),
        ("http://h.example/v", "http://h.example:80/v"),
        ("wss://m.example/ws/twilio", "wss://m.example:443/ws/twilio"),
        ("wss://m.example:443/ws/twilio", "wss://m.example/ws/twilio"),
    ],
)
def test_the_default_port_may_be_present_or_not(signed_url: str, request_url: str) -> None:
    signature = twilio_signature(AUTH_TOKEN, signed_url, DOC_PARAMS)
    assert valid_twilio_signature(AUTH_TOKEN, request_url, DOC_PARAMS, signature)


@pytest.mark.parametrize(
    ("signed_url", "request_url"),
    [
        ("https://h.example/v", "http://h.example/v"),  # the scheme is not normalised
        ("https://h.example/v", "wss://h.example/v"),
        ("https://h.example/v", "https://h.example:8443/v"),  # only the default port is optional
        ("https://h.example:8443/v", "https://h.example/v"),
        ("http://h.example/v", "http://h.example:443/v"),
        ("https://h.example/v", "https://h.example/v/"),
        ("https://h.example/v", "https://h.example/v?"),
    ],
)
def test_other_url_differences_fail(signed_url: str, request_url: str) -> None:
    signature = twilio_signature(AUTH_TOKEN, signed_url, {})
    assert not valid_twilio_signature(AUTH_TOKEN, request_url, {}, signature)


def test_an_empty_auth_token_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="auth token is empty"):
        valid_twilio_signature("", DOC_URL, DOC_PARAMS, DOC_SIGNATURE)
    with pytest.raises(ValueError, match="auth token is empty"):
        twilio_signature("", DOC_URL, DOC_PARAMS)


@SETTINGS
@given(
    url=st.text(max_size=60) | st.sampled_from(["https://h.example:99999/", "http://[::1", "https://h:/"]),
    params=st.dictionaries(
        st.text(max_size=8), st.text(max_size=8) | st.lists(st.text(max_size=4)), max_size=4
    ),
    signature=st.text(max_size=40),
)
def test_any_request_is_just_valid_or_not(
    url: str, params: dict[str, str | list[str]], signature: str
) -> None:
    assert valid_twilio_signature(AUTH_TOKEN, url, params, signature) is False
    assert valid_twilio_signature(AUTH_TOKEN, url, params, twilio_signature(AUTH_TOKEN, url, params))


def test_text_that_is_not_utf8_is_not_valid() -> None:
    assert not valid_twilio_signature(AUTH_TOKEN, "https://h.example/\ud800", {}, DOC_SIGNATURE)
    assert not valid_twilio_signature(AUTH_TOKEN, DOC_URL, {"a": "\udcff"}, DOC_SIGNATURE)
    assert not valid_twilio_signature(AUTH_TOKEN, DOC_URL, DOC_PARAMS, "0/KCTR6DLpKmkAf8muzZqo1nDgQ\u00e9")


# -- the per-call token ----------------------------------------------------------------------------------
def token(call_sid: str = CALL_SID, *, now: float = NOW, ttl: int = 60) -> str:
    return mint_call_token(AUTH_TOKEN, call_sid, now=now, ttl_seconds=ttl)


def rejection(auth_token: str, presented: str, call_sid: str, now: float) -> str:
    with pytest.raises(CallTokenRejected) as caught:
        verify_call_token(auth_token, presented, call_sid, now=now)
    return caught.value.reason


def test_a_fresh_token_for_this_call_is_accepted() -> None:
    verify_call_token(AUTH_TOKEN, token(), CALL_SID, now=NOW)
    verify_call_token(AUTH_TOKEN, token(), CALL_SID, now=NOW + 59.9)


def test_the_token_fits_a_parameter_and_needs_no_escaping() -> None:
    minted = token(now=9.99e11 - 1, ttl=1)
    assert len(minted) <= MAX_CALL_TOKEN_CHARS < 500
    assert set(minted) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
    assert AUTH_TOKEN not in minted


def test_an_expired_token_is_refused() -> None:
    assert rejection(AUTH_TOKEN, token(), CALL_SID, NOW + 60) == "expired"
    assert rejection(AUTH_TOKEN, token(), CALL_SID, float("nan")) == "expired"
    assert rejection(AUTH_TOKEN, token(ttl=1), CALL_SID, NOW + 3600) == "expired"


def test_another_calls_token_is_refused() -> None:
    assert rejection(AUTH_TOKEN, token(OTHER_CALL_SID), CALL_SID, NOW) == "wrong_call"
    assert rejection(AUTH_TOKEN, token(), "not a sid", NOW) == "wrong_call"


def test_a_token_from_another_account_or_edited_is_refused() -> None:
    assert rejection("another auth token", token(), CALL_SID, NOW) == "bad_signature"
    version, sid, expires, mac = token().split(".")
    later = f"{version}.{sid}.{int(expires) + 3600}.{mac}"
    assert rejection(AUTH_TOKEN, later, CALL_SID, NOW + 120) == "bad_signature"
    other = f"{version}.{OTHER_CALL_SID}.{expires}.{mac}"
    assert rejection(AUTH_TOKEN, other, OTHER_CALL_SID, NOW) == "bad_signature"
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert rejection(AUTH_TOKEN, f"{version}.{sid}.{expires}.{flipped}", CALL_SID, NOW) == "bad_signature"


def test_the_key_is_derived_not_the_auth_token_itself() -> None:
    claims = token().rpartition(".")[0]
    plain = hmac.new(AUTH_TOKEN.encode(), claims.encode(), hashlib.sha256).digest()
    forged = f"{claims}.{base64.urlsafe_b64encode(plain).rstrip(b'=').decode()}"
    assert rejection(AUTH_TOKEN, forged, CALL_SID, NOW) == "bad_signature"


@pytest.mark.parametrize(
    "presented",
    ["", "v1", "v2" + token()[2:], token() + ".", token() + "=", " " + token(), token()[:-1],
     token().replace(".", ":"), "v1." + CALL_SID + ".1." + "A" * 44, "v1.CA" + "g" * 32 + ".1." + "A" * 43,
     "v1." + CALL_SID + ".1234567890123." + "A" * 43, "v1." + CALL_SID + ".١٢." + "A" * 43,
     token() * 3],
)  # fmt: skip
def test_anything_else_is_malformed(presented: str) -> None:
    assert rejection(AUTH_TOKEN, presented, CALL_SID, NOW) == "malformed"


def test_rejections_never_quote_a_secret() -> None:
    presented = token(OTHER_CALL_SID)
    with pytest.raises(CallTokenRejected) as caught:
        verify_call_token(AUTH_TOKEN, presented, CALL_SID, now=NOW)
    text = f"{caught.value!s} {caught.value!r} {caught.value.args}"
    assert AUTH_TOKEN not in text and presented not in text and presented.split(".")[-1] not in text


def test_minting_refuses_what_cannot_make_a_token() -> None:
    with pytest.raises(ValueError, match="CallSid"):
        token("CA123")
    with pytest.raises(ValueError, match="positive"):
        token(ttl=0)
    for now in (-100.0, 1e12, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="12 digits"):
            token(now=now)
    with pytest.raises(ValueError, match="auth token is empty"):
        mint_call_token("", CALL_SID, now=NOW, ttl_seconds=60)
    with pytest.raises(ValueError, match="auth token is empty"):
        verify_call_token("", token(), CALL_SID, now=NOW)


@SETTINGS
@given(
    auth_token=st.text(min_size=1, max_size=40),
    presented=st.text(max_size=200) | st.just(token()).map(lambda t: t[: len(t) // 2]),
    call_sid=st.text(max_size=40) | st.just(CALL_SID),
    now=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_presented_token_is_accepted_or_rejected_with_a_reason(
    auth_token: str, presented: str, call_sid: str, now: float
) -> None:
    try:
        verify_call_token(auth_token, presented, call_sid, now=now)
    except CallTokenRejected as exc:
        assert exc.reason in ("malformed", "bad_signature", "wrong_call", "expired")
        assert str(exc) == exc.reason
    else:
        raise AssertionError("a token we did not mint was accepted")


@SETTINGS
@given(
    auth_token=st.text(min_size=1, max_size=40),
    now=st.floats(min_value=0, max_value=9e11),
    ttl=st.integers(min_value=1, max_value=86_400),
    position=st.integers(min_value=0, max_value=200),
    replacement=st.characters(),
)
def test_a_minted_token_verifies_and_any_one_character_edit_is_refused(
    auth_token: str, now: float, ttl: int, position: int, replacement: str
) -> None:
    minted = mint_call_token(auth_token, CALL_SID, now=now, ttl_seconds=ttl)
    verify_call_token(auth_token, minted, CALL_SID, now=now)
    position %= len(minted)
    edited = minted[:position] + replacement + minted[position + 1 :]
    if edited != minted:
        with pytest.raises(CallTokenRejected):
            verify_call_token(auth_token, edited, CALL_SID, now=now)
