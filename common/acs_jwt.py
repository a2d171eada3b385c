"""Verify the JWTs that ACS Call Automation attaches to callbacks and media WebSocket upgrades.

ACS signs every callback POST and every media-streaming WebSocket connect with an RS256 JWT
(protocols.md §4.1-4.2): issuer ``https://acscallautomation.communication.azure.com``, audience = the ACS
resource's Immutable Resource ID, keys published as a JWKS behind an OpenID configuration document.

Design notes:
- Only RS256 is accepted, and that is decided from a constant, never from the token's own ``alg``, so
  ``alg: none`` and the HS256-with-the-public-key confusion attack cannot get in.
- Keys are cached by ``kid``. An unknown ``kid`` triggers a re-fetch (that is how key rotation reaches us),
  but at most one fetch per ``min_refresh_seconds``, so garbage kids cannot hammer the JWKS endpoint.
- The cache has a TTL (``max_key_age_seconds``, 6 h): the first verification after it starts a re-fetch
  in the background, so a key ACS withdraws stops being trusted even if no new ``kid`` ever shows up,
  and no call waits for it. A failed background fetch keeps the old keys (ACS's outage is not ours).
- Failing to fetch keys rejects the token ("jwks_unavailable"): fail closed.
- No message, log line or return value ever contains the token. ``str(JwtRejected)`` goes back to the
  sender, so it never quotes what we expect (our audience or issuer); ``detail`` adds that, for our log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import TracebackType
from typing import Any, Literal

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

ACS_OPENID_CONFIG_URL = (
    "https://acscallautomation.communication.azure.com/calling/.well-known/acsopenidconfiguration"
)
ACS_ISSUER = "https://acscallautomation.communication.azure.com"

log = logging.getLogger(__name__)

_ALGORITHM = "RS256"
_MIN_RSA_BITS = 2048
FAILED_FETCH_RETRY_SECONDS = 2.0

RejectReason = Literal[
    "missing",
    "malformed",
    "bad_algorithm",
    "unknown_kid",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "bad_issuer",
    "bad_audience",
    "jwks_unavailable",
]


class JwtRejected(Exception):
    """The token was not accepted. ``reason`` is a short stable code; ``str(exc)`` is a human sentence
    fit for the sender; ``detail`` says more, for our own log only."""

    def __init__(self, reason: RejectReason, message: str | None = None, *, detail: str = "") -> None:
        super().__init__(message or f"ACS token rejected ({reason})")
        self.reason: RejectReason = reason
        self.detail = detail

    @property
    def for_log(self) -> str:
        return f"{self}: {self.detail}" if self.detail else str(self)


def _short(value: object, limit: int = 80) -> str:
    # Claim/header values end up in log lines: keep them bounded and quoted.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class AcsJwtVerifier:
    """Checks ACS-issued JWTs against the ACS JWKS. One instance per process; safe for concurrent use."""

    def __init__(
        self,
        *,
        audience: str,
        issuer: str = ACS_ISSUER,
        openid_config_url: str = ACS_OPENID_CONFIG_URL,
        leeway_seconds: float = 30.0,
        min_refresh_seconds: float = 30.0,
        max_key_age_seconds: float = 6 * 3600.0,
        fetch_timeout_seconds: float = 5.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not audience:
            # An empty audience would make every token's aud check meaningless.
            raise ValueError("audience (the ACS Immutable Resource ID) is required")
        self._audience = audience
        self._issuer = issuer
        self._openid_config_url = openid_config_url
        self._leeway = leeway_seconds
        self._min_refresh = min_refresh_seconds
        self._max_key_age = max_key_age_seconds
        self._fetch_timeout = fetch_timeout_seconds
        self._session = session
        self._owns_session = session is None
        self._keys: dict[str, RSAPublicKey] = {}
        self._lock = asyncio.Lock()
        self._last_fetch_at: float | None = None  # monotonic time of the last attempt, success or not
        self._last_fetch_ok = False
        self._keys_fetched_at = 0.0  # monotonic time of the last successful fetch
        self._background: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AcsJwtVerifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def verify_authorization(self, header_value: str | None) -> dict[str, Any]:
        """Verify an ``Authorization: Bearer <jwt>`` header value and return the claims."""
        if header_value is None or not header_value.strip():
            raise JwtRejected("missing", "no Authorization header")
        scheme, _, token = header_value.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise JwtRejected("malformed", "Authorization header does not use the Bearer scheme")
        token = token.strip()
        if not token:
            raise JwtRejected("missing", "Authorization header has the Bearer scheme but no token")
        return await self.verify(token)

    async def verify(self, token: str) -> dict[str, Any]:
        """Verify a bare JWT and return its claims, or raise JwtRejected."""
        if not token:
            raise JwtRejected("missing", "no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise JwtRejected("malformed", "token is not a well-formed JWT") from None

        alg = header.get("alg")
        if alg != _ALGORITHM:
            raise JwtRejected("bad_algorithm", f"token algorithm {_short(alg, 40)} is not {_ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise JwtRejected("malformed", "token header has no key id (kid)")

        key = await self._key_for(kid)
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise self._rejection(token, exc) from None

    def _rejection(self, token: str, exc: jwt.PyJWTError) -> JwtRejected:
        # Signature is checked before claims, so claim values quoted below come from a genuinely signed token.
        if isinstance(exc, jwt.InvalidSignatureError):
            return JwtRejected("bad_signature", "token signature does not match the published ACS key")
        if isinstance(exc, jwt.ExpiredSignatureError):
            return JwtRejected("expired", "token has expired")
        if isinstance(exc, jwt.ImmatureSignatureError):
            return JwtRejected("not_yet_valid", "token is not valid yet (nbf/iat in the future)")
        claims = self._unverified_claims(token)
        if isinstance(exc, jwt.InvalidIssuerError) or (
            isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim == "iss"
        ):
            return JwtRejected(
                "bad_issuer",
                "token issuer is not the expected one",
                detail=f"issuer {_short(claims.get('iss'))}, expected {_short(self._issuer)}",
            )
        if isinstance(exc, jwt.InvalidAudienceError) or (
            isinstance(exc, jwt.MissingRequiredClaimError) and exc.claim == "aud"
        ):
            # The classic misconfiguration: the ARM resource path instead of the Immutable Resource ID.
            return JwtRejected(
                "bad_audience",
                "token audience is not this ACS resource's immutable id",
                detail=f"audience {_short(claims.get('aud'))}, expected {_short(self._audience)}",
            )
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return JwtRejected("malformed", f"token lacks the required {exc.claim!r} claim")
        if isinstance(exc, jwt.InvalidAlgorithmError):
            return JwtRejected("bad_algorithm", f"token algorithm is not {_ALGORITHM}")
        return JwtRejected("malformed", f"token could not be decoded ({type(exc).__name__})")

    @staticmethod
    def _unverified_claims(token: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return {}

    async def _key_for(self, kid: str) -> RSAPublicKey:
        key = self._keys.get(kid)
        if key is not None:
            self._refresh_if_stale()
            return key
        # One fetch in flight at a time; waiters re-check the cache the winner just filled.
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = time.monotonic()
            # after a failure, try again sooner: until the keys come back every call is refused
            wait = (
                self._min_refresh
                if self._last_fetch_ok
                else min(self._min_refresh, FAILED_FETCH_RETRY_SECONDS)
            )
            if self._last_fetch_at is None or now - self._last_fetch_at >= wait:
                await self._refresh()
                key = self._keys.get(kid)
                if key is not None:
                    return key
            elif not self._last_fetch_ok:
                raise JwtRejected(
                    "jwks_unavailable", "ACS signing keys are unavailable (recent fetch failed)"
                )
        raise JwtRejected("unknown_kid", f"token key id {_short(kid, 60)} is not among the ACS signing keys")

    def _refresh_if_stale(self) -> None:
        now = time.monotonic()
        if (
            now - self._keys_fetched_at < self._max_key_age
            or (self._background is not None and not self._background.done())
            or (self._last_fetch_at is not None and now - self._last_fetch_at < self._min_refresh)
        ):
            return
        self._background = asyncio.get_running_loop().create_task(self._background_refresh())

    async def _background_refresh(self) -> None:
        async with self._lock:
            try:
                await self._refresh()
            except JwtRejected as exc:  # keep the keys we have; the next stale use tries again
                log.warning("background refresh of the ACS signing keys failed: %s", exc)

    async def _refresh(self) -> None:
        # Recorded before the attempt so failures (and cancellations) are rate limited too.
        self._last_fetch_at = time.monotonic()
        self._last_fetch_ok = False
        try:
            async with asyncio.timeout(self._fetch_timeout):
                config = await self._get_json(self._openid_config_url)
                jwks_uri = config.get("jwks_uri")
                if not isinstance(jwks_uri, str) or not jwks_uri:
                    raise ValueError("OpenID configuration has no jwks_uri")
                keys = self._parse_jwks(await self._get_json(jwks_uri))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JwtRejected(
                "jwks_unavailable", f"could not fetch ACS signing keys ({type(exc).__name__})"
            ) from None
        # Replace rather than merge, so a key ACS withdraws stops being trusted at the next refresh.
        self._keys = keys
        self._last_fetch_ok = True
        self._keys_fetched_at = time.monotonic()

    async def _get_json(self, url: str) -> dict[str, Any]:
        if self._session is None:
            # Created here, inside the running loop, never in __init__.
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        async with self._session.get(url, raise_for_status=True) as resp:
            body = await resp.json(content_type=None)  # don't insist on the exact Content-Type
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        return body

    @staticmethod
    def _parse_jwks(jwks: dict[str, Any]) -> dict[str, RSAPublicKey]:
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise ValueError("JWKS has no keys list")
        keys: dict[str, RSAPublicKey] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") != "RSA":
                continue
            kid = entry.get("kid")
            if not isinstance(kid, str) or entry.get("use", "sig") != "sig":
                continue
            if entry.get("alg", _ALGORITHM) != _ALGORITHM:
                continue
            try:
                key = jwt.PyJWK(entry, algorithm=_ALGORITHM).key
            except jwt.PyJWTError:
                continue  # one unusable key must not take the others down
            if isinstance(key, RSAPublicKey) and key.key_size >= _MIN_RSA_BITS:
                keys[kid] = key
        if not keys:
            raise ValueError("JWKS has no usable RS256 keys")
        return keys
