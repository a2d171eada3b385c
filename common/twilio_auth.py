"""Twilio's request signature and our per-call token, in one place for the control plane, the media
host and the Twilio emulator (twilio-openai.md §2, §3.4).

- `X-Twilio-Signature`: base64(HMAC-SHA1(auth token, URL + sorted name/value pairs)), as Twilio's own
  `RequestValidator` (twilio 9.13.0) computes it. Depending on `twilio` for ten lines would pull in
  requests, PyJWT and aiohttp-retry.
- The per-call token travels in a TwiML `<Parameter>` and comes back in the media stream's `start`
  message: it proves the socket belongs to a call our webhook answered, which the upgrade's signature
  alone does not (that one is the same for every call). It is `v1.<CallSid>.<expiry>.<mac>`, with the
  MAC keyed by a key derived from the auth token, so the token never keys two different schemes.
- Nothing here puts a token (ours or the auth token) into an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from urllib.parse import urlsplit

# Form parameters as parsed: a plain mapping (one value or a list of values per name), or a multidict
# (aiohttp's `getall`, werkzeug's `getlist`, as azure-functions' `req.form` is).
FormParams = Mapping[str, str] | Mapping[str, Sequence[str]]

_DEFAULT_PORTS = {"https": 443, "wss": 443, "http": 80, "ws": 80}


def sid_pattern(prefix: str) -> str:
    """A Twilio SID: two letters naming its kind (`CA` call, `AC` account, `MZ` stream), 32 hex digits."""
    return prefix + "[0-9a-fA-F]{32}"


_CALL_SID = re.compile(sid_pattern("CA"))
_ACCOUNT_SID = re.compile(sid_pattern("AC"))
_AUTH_TOKEN = re.compile(r"[0-9a-fA-F]{32}")  # what Twilio issues; an API key secret is not one


def credential_problems(account_sid: str | None, auth_token: str | None) -> dict[str, str]:
    """What is wrong with TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN (both, or neither, must be set), by
    setting name. Never quotes a value: one is a secret."""
    problems: dict[str, str] = {}
    if account_sid is not None and not _ACCOUNT_SID.fullmatch(account_sid):
        problems["TWILIO_ACCOUNT_SID"] = "TWILIO_ACCOUNT_SID must be an Account SID (AC + 32 hex digits)"
    if auth_token is not None and not _AUTH_TOKEN.fullmatch(auth_token):
        problems["TWILIO_AUTH_TOKEN"] = "TWILIO_AUTH_TOKEN must be the account's Auth Token (32 hex digits)"
    if (account_sid is None) != (auth_token is None):  # half a configuration is a mistake
        name = "TWILIO_ACCOUNT_SID" if account_sid is None else "TWILIO_AUTH_TOKEN"
        problems[name] = f"{name} is required for Twilio numbers (the other TWILIO_ setting is set)"
    return problems


def twilio_signature(auth_token: str, url: str, params: FormParams) -> str:
    """The `X-Twilio-Signature` of a request to `url` (exactly as Twilio was told it, query included)
    with form parameters `params` (none for GET or a WebSocket upgrade). Raises `ValueError` for an
    empty auth token and `UnicodeEncodeError` for text that is not UTF-8 (lone surrogates)."""
    signed = url + "".join(name + value for name, value in _sorted_pairs(params))
    mac = hmac.new(_secret(auth_token), signed.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def valid_twilio_signature(auth_token: str, url: str, params: FormParams, signature: str) -> bool:
    """Whether `signature` is Twilio's for this request. Twilio signs the URL with or without the
    scheme's default port depending on its back end, so both forms are tried, as its validator does;
    the scheme is not normalised (a signature over `https://…` does not validate `http://…`).
    Raises `ValueError` only for an empty auth token (a configuration error, not the sender's)."""
    if not signature.isascii():  # compare_digest refuses non-ASCII str; no signature is
        return False
    secret = _secret(auth_token)
    given = signature.encode("ascii")
    try:
        pairs = "".join(name + value for name, value in _sorted_pairs(params))
        candidates = [(candidate + pairs).encode("utf-8") for candidate in _port_variants(url)]
    except UnicodeEncodeError:  # lone surrogates: Twilio never signed that
        return False
    valid = False
    for signed in candidates:  # no early exit: the time spent does not say which form matched
        expected = base64.b64encode(hmac.new(secret, signed, hashlib.sha1).digest())
        valid |= hmac.compare_digest(expected, given)
    return valid


def _secret(auth_token: str) -> bytes:
    if not auth_token:
        raise ValueError("the Twilio auth token is empty")
    return auth_token.encode("utf-8")


def _sorted_pairs(params: FormParams) -> Iterable[tuple[str, str]]:
    # Names in code-point order; a repeated name's distinct values, sorted (twilio 9.13.0 dedupes them).
    for name in sorted(set(params)):  # a multidict yields a repeated name once per value
        for value in sorted(set(_values(params, name))):
            yield name, value


def _values(params: FormParams, name: str) -> Iterable[str]:
    getall = getattr(params, "getall", None) or getattr(params, "getlist", None)
    if getall is not None:
        values: Iterable[str] = getall(name)
        return values
    value = params[name]
    return [value] if isinstance(value, str) else value


def _port_variants(url: str) -> list[str]:
    """`url` as given, plus the same URL with the scheme's default port added or removed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL we can take apart: only the exact text can match
        return [url]
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.netloc:
        return [url]
    if port is None:
        other = parts._replace(netloc=f"{parts.netloc}:{default}")
    elif port == default:
        other = parts._replace(netloc=parts.netloc.rpartition(":")[0])
    else:
        return [url]
    return [url, other.geturl()]


# -- the per-call token ------------------------------------------------------------------------------
CallTokenReason = Literal["malformed", "bad_signature", "wrong_call", "expired"]

MAX_CALL_TOKEN_CHARS = 128  # a real one is 92; TwiML allows name + value up to 500
_TOKEN_KEY_LABEL = b"call-token-v1"  # domain separation: this key signs nothing else
_TOKEN = re.compile(r"v1\.(" + sid_pattern("CA") + r")\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")


class CallTokenRejected(Exception):
    """A per-call token was not accepted; `reason` is a short stable code, and the whole message."""

    def __init__(self, reason: CallTokenReason) -> None:
        super().__init__(reason)
        self.reason: CallTokenReason = reason


def mint_call_token(auth_token: str, call_sid: str, *, now: float, ttl_seconds: int) -> str:
    """A token for the media stream of call `call_sid`, valid for `ttl_seconds` from `now` (Unix
    seconds). URL- and XML-safe (`[A-Za-z0-9._-]`). Raises `ValueError` for arguments that cannot make
    a token (empty auth token, not a CallSid, ttl not positive)."""
    if not _CALL_SID.fullmatch(call_sid):
        raise ValueError("call_sid must be a Twilio CallSid (CA + 32 hex digits)")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    if not (math.isfinite(now) and 0 <= int(now) + ttl_seconds < 10**12):
        raise ValueError("the expiry must be a Unix time of at most 12 digits")
    expires = int(now) + ttl_seconds
    claims = f"v1.{call_sid}.{expires}"
    return f"{claims}.{_token_mac(_secret(auth_token), claims)}"


def verify_call_token(auth_token: str, token: str, call_sid: str, *, now: float) -> None:
    """Accept `token` for call `call_sid` at `now`, or raise `CallTokenRejected`. The signature is
    checked before anything the token claims, so only a token we minted can be called expired or
    another call's. Raises `ValueError` only for an empty auth token (our configuration)."""
    secret = _secret(auth_token)  # a configuration error is not the sender's: it is not a rejection
    match = _TOKEN.fullmatch(token) if len(token) <= MAX_CALL_TOKEN_CHARS else None
    if match is None:
        raise CallTokenRejected("malformed")
    token_call_sid, expires, mac = match.groups()
    claims = token.rpartition(".")[0]
    if not hmac.compare_digest(_token_mac(secret, claims).encode("ascii"), mac.encode("ascii")):
        raise CallTokenRejected("bad_signature")
    if token_call_sid != call_sid:
        raise CallTokenRejected("wrong_call")
    if not now < int(expires):  # NaN is expired too
        raise CallTokenRejected("expired")


def _token_mac(secret: bytes, claims: str) -> str:
    key = hmac.new(secret, _TOKEN_KEY_LABEL, hashlib.sha256).digest()
    mac = hmac.new(key, claims.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")
