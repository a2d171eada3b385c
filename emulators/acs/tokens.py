"""A local stand-in for ACS's token issuer: OpenID configuration, JWKS, and RS256 tokens shaped like ACS's.

The production verifier (common/acs_jwt.py) is pointed at ``openid_config_url`` here and runs unchanged, so
tests and the local stack exercise the real signature path instead of a bypass.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Mapping
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from emulators.serving import serve

OPENID_CONFIG_PATH = "/calling/.well-known/acsopenidconfiguration"
JWKS_PATH = "/calling/keys"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _b64url_json(obj: Mapping[str, Any]) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned_token(claims: Mapping[str, Any], *, kid: str | None = None) -> str:
    """An ``alg: none`` token (empty signature), for proving the verifier refuses it."""
    header: dict[str, Any] = {"alg": "none", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return f"{_b64url_json(header)}.{_b64url_json(claims)}."


class AcsTokenIssuer:
    """Signs ACS-style tokens and serves the matching OpenID configuration and JWKS over HTTP."""

    def __init__(self) -> None:
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = ""
        self.rotate_key()
        self.issuer = ""  # set by serve(); settable when make_app() is mounted elsewhere
        self.openid_config_fetches = 0
        self.jwks_fetches = 0
        self._runner: web.AppRunner | None = None

    @property
    def openid_config_url(self) -> str:
        return self.issuer + OPENID_CONFIG_PATH

    def rotate_key(self) -> str:
        """Add a new signing key (the old ones stay published, as during a real rollover) and sign with it."""
        self.kid = secrets.token_hex(16)
        self._keys[self.kid] = _new_key()
        return self.kid

    def withdraw_key(self, kid: str) -> None:
        """Stop publishing a key (a leaked or retired one): verifiers must stop trusting it."""
        del self._keys[kid]

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in self._keys.items():
            jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            keys.append(
                {"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": jwk["n"], "e": jwk["e"]}
            )
        return {"keys": keys}

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(OPENID_CONFIG_PATH, self._handle_openid_config)
        app.router.add_get(JWKS_PATH, self._handle_jwks)
        return app

    async def _handle_openid_config(self, request: web.Request) -> web.Response:
        self.openid_config_fetches += 1
        issuer = self.issuer or str(request.url.origin())
        return web.json_response(
            {
                "issuer": issuer,
                "jwks_uri": issuer + JWKS_PATH,
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
            }
        )

    async def _handle_jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        return web.json_response(self.jwks())

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the app on host:port (0 = any free port); returns the issuer URL."""
        if self._runner is not None:
            raise RuntimeError("already serving")
        self._runner, self.issuer = await serve(self.make_app(), host, port)
        return self.issuer

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def sign(
        self,
        *,
        audience: str,
        lifetime_seconds: float = 300,
        issuer: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
        kid: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        algorithm: str = "RS256",
        not_before: float | None = None,
        issued_at: float | None = None,
    ) -> str:
        """A token like ACS's (5-minute lifetime by default). Times are epoch seconds; exp = iat + lifetime.

        ``key`` without ``kid`` signs with a foreign key under the current kid (a forged signature);
        ``extra_claims`` override the standard claims (e.g. a list ``aud``).
        """
        iss = self.issuer if issuer is None else issuer
        if not iss:
            raise RuntimeError("issuer unknown: call serve() (or set .issuer) first, or pass issuer=")
        iat = time.time() if issued_at is None else issued_at
        claims: dict[str, Any] = {
            "iss": iss,
            "aud": audience,
            "iat": int(iat),
            "nbf": int(iat if not_before is None else not_before),
            "exp": int(iat + lifetime_seconds),
        }
        claims.update(extra_claims or {})
        signing_kid = self.kid if kid is None else kid
        signing_key = key if key is not None else self._keys.get(signing_kid, self._keys[self.kid])
        return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"kid": signing_kid})
