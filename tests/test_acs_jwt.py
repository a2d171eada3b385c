"""AcsJwtVerifier against the local ACS token issuer, over real sockets on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from common.acs_jwt import AcsJwtVerifier, JwtRejected
from emulators.acs.tokens import OPENID_CONFIG_PATH, AcsTokenIssuer, unsigned_token
from emulators.serving import serve

AUDIENCE = "6f0c7a1e-5b5d-4e0b-9c55-0e6d3b1f2a77"  # an Immutable Resource ID


@pytest.fixture
async def verifier(issuer: AcsTokenIssuer) -> AsyncIterator[AcsJwtVerifier]:
    async with AcsJwtVerifier(
        audience=AUDIENCE, issuer=issuer.issuer, openid_config_url=issuer.openid_config_url
    ) as v:
        yield v


async def rejected(coro: Awaitable[Any], token: str | None = None) -> JwtRejected:
    with pytest.raises(JwtRejected) as info:
        await coro
    exc = info.value
    if token:
        # Neither the token nor any of its non-trivial segments may leak into messages.
        pieces = [token, *(p for p in token.split(".") if len(p) > 8)]
        for text in (str(exc), repr(exc), *map(str, exc.args)):
            assert not any(p in text for p in pieces)
    return exc


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_valid_token_returns_claims(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, extra_claims={"callId": "abc"})
    claims = await verifier.verify_authorization(f"Bearer {token}")
    assert claims["aud"] == AUDIENCE
    assert claims["iss"] == issuer.issuer
    assert claims["callId"] == "abc"
    # Scheme is case-insensitive.
    assert (await verifier.verify_authorization(f"bearer {token}"))["callId"] == "abc"


@pytest.mark.parametrize("header", [None, "", "   ", "Bearer", "Bearer   "])
async def test_missing_header(verifier: AcsJwtVerifier, header: str | None) -> None:
    assert (await rejected(verifier.verify_authorization(header))).reason == "missing"


async def test_non_bearer_scheme(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE)
    exc = await rejected(verifier.verify_authorization(f"Basic {token}"), token)
    assert exc.reason == "malformed"
    exc = await rejected(verifier.verify_authorization(token), token)  # no scheme at all
    assert exc.reason == "malformed"


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30"])
async def test_garbage_token(verifier: AcsJwtVerifier, garbage: str) -> None:
    assert (await rejected(verifier.verify(garbage), garbage)).reason == "malformed"


async def test_missing_kid_is_malformed(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    token = f"{header}.{b64url(b'{}')}.{b64url(b'sig')}"
    assert (await rejected(verifier.verify(token), token)).reason == "malformed"


async def test_expired(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, issued_at=time.time() - 600, lifetime_seconds=300)
    assert (await rejected(verifier.verify(token), token)).reason == "expired"


async def test_within_leeway_accepted(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    # Expired 10 s ago, default leeway 30 s: clock skew tolerated.
    token = issuer.sign(audience=AUDIENCE, issued_at=time.time() - 310, lifetime_seconds=300)
    assert (await verifier.verify(token))["aud"] == AUDIENCE


async def test_not_yet_valid(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    now = time.time()
    token = issuer.sign(audience=AUDIENCE, issued_at=now, not_before=now + 600)
    assert (await rejected(verifier.verify(token), token)).reason == "not_yet_valid"


async def test_missing_exp_is_malformed(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE)
    claims = await verifier.verify(token)
    del claims["exp"]
    key = issuer._keys[issuer.kid]
    no_exp = jwt.encode(claims, key, algorithm="RS256", headers={"kid": issuer.kid})
    assert (await rejected(verifier.verify(no_exp), no_exp)).reason == "malformed"


async def test_wrong_audience(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    arm_path = "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/communicationServices/z"
    token = issuer.sign(audience=arm_path)
    exc = await rejected(verifier.verify(token), token)
    assert exc.reason == "bad_audience"
    assert AUDIENCE not in str(exc)  # what goes back to the sender never says what we expect...
    assert AUDIENCE in exc.for_log and arm_path[:40] in exc.for_log  # ...our log does, for the operator


async def test_missing_audience(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, extra_claims={"aud": None})
    assert (await rejected(verifier.verify(token), token)).reason == "bad_audience"


async def test_audience_list_containing_ours(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, extra_claims={"aud": ["someone-else", AUDIENCE]})
    assert (await verifier.verify(token))["aud"] == ["someone-else", AUDIENCE]
    other = issuer.sign(audience=AUDIENCE, extra_claims={"aud": ["someone-else"]})
    assert (await rejected(verifier.verify(other), other)).reason == "bad_audience"


async def test_wrong_issuer(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, issuer="https://evil.example")
    assert (await rejected(verifier.verify(token), token)).reason == "bad_issuer"


async def test_bad_signature(
    issuer: AcsTokenIssuer, verifier: AcsJwtVerifier, foreign_key: rsa.RSAPrivateKey
) -> None:
    token = issuer.sign(audience=AUDIENCE, key=foreign_key)  # issuer's kid, someone else's key
    assert (await rejected(verifier.verify(token), token)).reason == "bad_signature"


async def test_tampered_payload(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    header, _, sig = issuer.sign(audience=AUDIENCE).split(".")
    claims = {"iss": issuer.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 300, "admin": True}
    token = f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"
    assert (await rejected(verifier.verify(token), token)).reason == "bad_signature"


async def test_alg_none(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    claims = {"iss": issuer.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    token = unsigned_token(claims, kid=issuer.kid)
    assert (await rejected(verifier.verify(token), token)).reason == "bad_algorithm"
    assert issuer.jwks_fetches == 0  # refused before any key lookup


async def test_hs256_with_public_key_as_secret(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    # The key-confusion attack: HMAC "signed" with the public key, which anyone can download.
    # PyJWT refuses to encode this itself, so build it by hand.
    public_key = jwt.PyJWK(issuer.jwks()["keys"][0]).key  # exactly what an attacker can download
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}).encode())
    claims = {"iss": issuer.issuer, "aud": AUDIENCE, "exp": int(time.time()) + 300}
    signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
    token = f"{signing_input}.{b64url(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())}"
    assert (await rejected(verifier.verify(token), token)).reason == "bad_algorithm"


async def test_other_rsa_algorithm_refused(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    token = issuer.sign(audience=AUDIENCE, algorithm="RS512")  # right key, wrong algorithm
    assert (await rejected(verifier.verify(token), token)).reason == "bad_algorithm"


async def test_unknown_kid(
    issuer: AcsTokenIssuer, verifier: AcsJwtVerifier, foreign_key: rsa.RSAPrivateKey
) -> None:
    token = issuer.sign(audience=AUDIENCE, key=foreign_key, kid="never-published")
    assert (await rejected(verifier.verify(token), token)).reason == "unknown_kid"


async def test_keys_cached(issuer: AcsTokenIssuer, verifier: AcsJwtVerifier) -> None:
    tokens = [issuer.sign(audience=AUDIENCE, extra_claims={"n": i}) for i in range(20)]
    for token in tokens[:10]:
        await verifier.verify(token)
    await asyncio.gather(*(verifier.verify(t) for t in tokens[10:]))
    assert issuer.jwks_fetches == 1
    assert issuer.openid_config_fetches == 1


async def test_concurrent_cold_start_shares_one_fetch(
    issuer: AcsTokenIssuer, verifier: AcsJwtVerifier
) -> None:
    tokens = [issuer.sign(audience=AUDIENCE, extra_claims={"n": i}) for i in range(20)]
    results = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert [c["n"] for c in results] == list(range(20))
    assert issuer.jwks_fetches == 1


async def test_key_rotation_refetches_once(issuer: AcsTokenIssuer) -> None:
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=issuer.openid_config_url,
        min_refresh_seconds=0.0,
    ) as verifier:
        old_kid = issuer.kid
        await verifier.verify(issuer.sign(audience=AUDIENCE))
        assert issuer.jwks_fetches == 1

        new_kid = issuer.rotate_key()
        assert new_kid != old_kid
        new_token = issuer.sign(audience=AUDIENCE)
        assert (await verifier.verify(new_token))["aud"] == AUDIENCE
        assert issuer.jwks_fetches == 2
        # Both keys now cached: old-kid and new-kid tokens verify without further fetches.
        await verifier.verify(issuer.sign(audience=AUDIENCE, kid=old_kid))
        await verifier.verify(issuer.sign(audience=AUDIENCE))
        assert issuer.jwks_fetches == 2


async def test_rotation_seen_only_after_refresh_window(issuer: AcsTokenIssuer) -> None:
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=issuer.openid_config_url,
        min_refresh_seconds=0.8,  # generous: rotate_key() runs an RSA keygen inside the window
    ) as verifier:
        await verifier.verify(issuer.sign(audience=AUDIENCE))
        issuer.rotate_key()
        token = issuer.sign(audience=AUDIENCE)
        assert (await rejected(verifier.verify(token), token)).reason == "unknown_kid"
        assert issuer.jwks_fetches == 1  # inside the window: no fetch
        await asyncio.sleep(0.85)
        await verifier.verify(token)
        assert issuer.jwks_fetches == 2


async def wait_fetches(issuer: AcsTokenIssuer, count: int) -> None:
    async with asyncio.timeout(5):
        while issuer.jwks_fetches < count:
            await asyncio.sleep(0.01)


async def test_withdrawn_key_stops_being_trusted_after_the_ttl(issuer: AcsTokenIssuer) -> None:
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=issuer.openid_config_url,
        min_refresh_seconds=0.0,
        max_key_age_seconds=0.3,
    ) as verifier:
        withdrawn = issuer.kid
        token = issuer.sign(audience=AUDIENCE)
        await verifier.verify(token)
        issuer.rotate_key()
        issuer.withdraw_key(withdrawn)
        await verifier.verify(token)  # inside the TTL the cached key still counts
        assert issuer.jwks_fetches == 1

        await asyncio.sleep(0.35)
        await verifier.verify(token)  # past the TTL: answered from the cache, re-fetched behind it
        await wait_fetches(issuer, 2)
        assert (await rejected(verifier.verify(token), token)).reason == "unknown_kid"
        assert (await verifier.verify(issuer.sign(audience=AUDIENCE)))["aud"] == AUDIENCE  # the new key


async def test_failed_background_refresh_keeps_the_keys(issuer: AcsTokenIssuer) -> None:
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=issuer.openid_config_url,
        min_refresh_seconds=0.0,
        max_key_age_seconds=0.1,
        fetch_timeout_seconds=0.5,
    ) as verifier:
        token = issuer.sign(audience=AUDIENCE)
        await verifier.verify(token)
        await issuer.close()  # ACS's key endpoint goes dark
        await asyncio.sleep(0.15)
        for _ in range(3):  # each stale use may try again in the background; calls go on meanwhile
            assert (await verifier.verify(token))["aud"] == AUDIENCE
            await asyncio.sleep(0.05)


async def test_unknown_kid_flood_fetches_at_most_once(
    issuer: AcsTokenIssuer, foreign_key: rsa.RSAPrivateKey
) -> None:
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=issuer.openid_config_url,
        min_refresh_seconds=0.5,
    ) as verifier:
        flood = [issuer.sign(audience=AUDIENCE, key=foreign_key, kid=f"random-{i}") for i in range(50)]
        await verifier.verify(issuer.sign(audience=AUDIENCE))
        await asyncio.sleep(0.55)  # past the window, so the flood is allowed exactly one re-fetch
        before = issuer.jwks_fetches
        results = await asyncio.gather(*(verifier.verify(t) for t in flood), return_exceptions=True)
        assert all(isinstance(r, JwtRejected) and r.reason == "unknown_kid" for r in results)
        assert issuer.jwks_fetches - before == 1
        # And a sequential flood straight after fetches nothing more.
        for token in flood[:10]:
            assert (await rejected(verifier.verify(token), token)).reason == "unknown_kid"
        assert issuer.jwks_fetches - before == 1
        # Genuine tokens still pass throughout.
        await verifier.verify(issuer.sign(audience=AUDIENCE))


async def test_jwks_unreachable(issuer: AcsTokenIssuer) -> None:
    port = free_port()  # nothing listens here: connection refused
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=f"http://127.0.0.1:{port}{OPENID_CONFIG_PATH}",
    ) as verifier:
        token = issuer.sign(audience=AUDIENCE)
        assert (await rejected(verifier.verify(token), token)).reason == "jwks_unavailable"
        assert (await rejected(verifier.verify(token), token)).reason == "jwks_unavailable"


@pytest.fixture
async def flaky_openid(issuer: AcsTokenIssuer) -> AsyncIterator[tuple[dict[str, Any], str]]:
    """An OpenID-config server whose behaviour the test controls; when "ok" it points at the issuer's JWKS."""
    state: dict[str, Any] = {"mode": "ok", "hits": 0}

    async def handler(request: web.Request) -> web.StreamResponse:
        state["hits"] += 1
        mode = state["mode"]
        if mode == "500":
            return web.Response(status=500, text="boom")
        if mode == "bad_json":
            return web.Response(text="{not json", content_type="application/json")
        if mode == "slow":
            await asyncio.sleep(0.5)  # longer than fetch_timeout_seconds
        return web.json_response({"jwks_uri": issuer.issuer + "/calling/keys"})

    app = web.Application()
    app.router.add_get(OPENID_CONFIG_PATH, handler)
    runner, url = await serve(app)
    yield state, url + OPENID_CONFIG_PATH
    await runner.cleanup()


@pytest.mark.parametrize("mode", ["500", "bad_json", "slow"])
async def test_jwks_failure_fails_closed_and_is_rate_limited(
    issuer: AcsTokenIssuer, flaky_openid: tuple[dict[str, Any], str], mode: str
) -> None:
    state, url = flaky_openid
    state["mode"] = mode
    async with AcsJwtVerifier(
        audience=AUDIENCE,
        issuer=issuer.issuer,
        openid_config_url=url,
        min_refresh_seconds=0.5,
        fetch_timeout_seconds=0.2,
    ) as verifier:
        token = issuer.sign(audience=AUDIENCE)
        for _ in range(5):
            assert (await rejected(verifier.verify(token), token)).reason == "jwks_unavailable"
        assert state["hits"] == 1  # failures don't hammer the endpoint either

        state["mode"] = "ok"
        await asyncio.sleep(0.55)
        assert (await verifier.verify(token))["aud"] == AUDIENCE  # recovers once the window passes
        assert state["hits"] == 2


async def test_jwks_with_no_usable_keys(issuer: AcsTokenIssuer) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"jwks_uri": str(request.url.origin()) + "/keys"})

    async def keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [{"kty": "oct", "kid": issuer.kid, "k": "c2VjcmV0"}]})

    app = web.Application()
    app.router.add_get(OPENID_CONFIG_PATH, handler)
    app.router.add_get("/keys", keys)
    runner, base = await serve(app)
    try:
        url = base + OPENID_CONFIG_PATH
        async with AcsJwtVerifier(audience=AUDIENCE, issuer=issuer.issuer, openid_config_url=url) as v:
            token = issuer.sign(audience=AUDIENCE)
            assert (await rejected(v.verify(token), token)).reason == "jwks_unavailable"
    finally:
        await runner.cleanup()


async def test_shared_session_not_closed(issuer: AcsTokenIssuer) -> None:
    async with aiohttp.ClientSession() as session:
        async with AcsJwtVerifier(
            audience=AUDIENCE,
            issuer=issuer.issuer,
            openid_config_url=issuer.openid_config_url,
            session=session,
        ) as verifier:
            await verifier.verify(issuer.sign(audience=AUDIENCE))
        assert not session.closed


async def test_issuer_documents(issuer: AcsTokenIssuer) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(issuer.openid_config_url) as resp:
            config = await resp.json()
        assert config["issuer"] == issuer.issuer
        assert config["jwks_uri"] == issuer.issuer + "/calling/keys"
        assert config["id_token_signing_alg_values_supported"] == ["RS256"]
        async with session.get(config["jwks_uri"]) as resp:
            jwks = await resp.json()
    (key,) = jwks["keys"]
    assert key["kid"] == issuer.kid
    assert {k for k in key if k not in {"kty", "kid", "use", "alg", "n", "e"}} == set()  # public parts only
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


def test_verifier_needs_no_loop() -> None:
    # Construction must not touch the event loop (no ClientSession in __init__).
    AcsJwtVerifier(audience=AUDIENCE)


async def test_messages_never_contain_token(
    issuer: AcsTokenIssuer, verifier: AcsJwtVerifier, foreign_key: rsa.RSAPrivateKey
) -> None:
    now = time.time()
    bad = [
        issuer.sign(audience=AUDIENCE, issued_at=now - 600),
        issuer.sign(audience=AUDIENCE, not_before=now + 600),
        issuer.sign(audience="other"),
        issuer.sign(audience=AUDIENCE, issuer="https://evil.example"),
        issuer.sign(audience=AUDIENCE, key=foreign_key),
        issuer.sign(audience=AUDIENCE, key=foreign_key, kid="nope"),
        issuer.sign(audience=AUDIENCE, algorithm="RS384"),
        unsigned_token({"aud": AUDIENCE}, kid=issuer.kid),
    ]
    reasons = set()
    for token in bad:
        exc = await rejected(verifier.verify_authorization(f"Bearer {token}"), token)
        assert exc.__cause__ is None
        reasons.add(exc.reason)
    assert len(reasons) == len(bad) - 1  # RS384 and none share "bad_algorithm"
