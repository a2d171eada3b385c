"""Identity REST stand-in: the ACS users and access tokens `azure-communication-identity` 1.5.0 asks for.

Served by `CallAutomationStandIn` on the same endpoint and behind the same HMAC check, as ACS serves
both APIs of one resource with one key. Routes (api-version 2023-10-01):

- `POST /identities` with `{"createTokenWithScopes": [...], "expiresInMinutes": N}`, or no body
  (a user only) -> 201 `{"identity": {"id"}, "accessToken": {"token", "expiresOn"}}`
- `POST /identities/{id}/:issueAccessToken` with `{"scopes": [...], "expiresInMinutes": N}` -> 200
- `POST /identities/{id}/:revokeAccessTokens`, `DELETE /identities/{id}` -> 204

Tokens are JWTs shaped as ACS's (`skypeid`, `scp`, `acsScope` with the scopes comma-separated, `csi`, `exp`:
the browser's Calling SDK reads `acsScope`),
signed HS256 with a secret of this stand-in alone: nothing but `user_of` can check them, as nothing outside
could use a stand-in's token anyway.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from .rest_errors import AcsRestError

SCOPES = ("chat", "voip", "chat.join", "chat.join.limited", "voip.join")
MIN_MINUTES, MAX_MINUTES = 60, 1440  # the service's bounds for expiresInMinutes; its default is the maximum
_ALGORITHM = "HS256"
_USER_PREFIX = "8:"  # a raw id is "8:" + the token's skypeid ("acs:<resource id>_<guid>")

_ID = r"(?P<identity_id>[^/]+)"
# (method, path regex, operation), matched against the decoded path as CallAutomationStandIn routes.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/identities$"), "identity_create"),
    ("POST", re.compile(rf"^/identities/{_ID}/:issueAccessToken$"), "identity_token"),
    ("POST", re.compile(rf"^/identities/{_ID}/:revokeAccessTokens$"), "identity_revoke"),
    ("DELETE", re.compile(rf"^/identities/{_ID}$"), "identity_delete"),
)


@dataclass
class IssuedUser:
    id: str  # raw id, 8:acs:<resource id>_<guid>
    token_ids: set[str] = field(default_factory=set)  # jti of its tokens not yet revoked


class Identities:
    """The users this stand-in issued, and their tokens."""

    def __init__(self, resource_id: str) -> None:
        self.resource_id = resource_id
        self.users: dict[str, IssuedUser] = {}  # by raw id
        self._secret = secrets.token_bytes(32)

    def handle(self, operation: str, identity_id: str | None, body: Any) -> tuple[int, Any]:
        """One request of a ROUTES operation: (identity id from the path, parsed JSON body or None)
        -> (status, response body or None)."""
        handlers = {
            "identity_create": self._create,
            "identity_token": self._issue,
            "identity_revoke": self._revoke,
            "identity_delete": self._delete,
        }
        return handlers[operation](identity_id, body)

    def user_of(self, token: str) -> str | None:
        """The raw id of the user a token belongs to, if this stand-in issued it and it is still good
        (not expired, revoked, or of a deleted user)."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "skypeid", "jti"]}
            )
        except jwt.InvalidTokenError:
            return None
        user = self.users.get(_USER_PREFIX + str(claims["skypeid"]))
        return user.id if user is not None and claims["jti"] in user.token_ids else None

    # -- operations ------------------------------------------------------------------------------
    def _create(self, _: str | None, body: Any) -> tuple[int, Any]:
        fields = _object(body, ("createTokenWithScopes", "expiresInMinutes"), required=False)
        user = IssuedUser(f"{_USER_PREFIX}acs:{self.resource_id}_{uuid.uuid4()}")
        result: dict[str, Any] = {"identity": {"id": user.id}}
        if fields.get("createTokenWithScopes") is not None:
            scopes = _scopes(fields["createTokenWithScopes"], "createTokenWithScopes")
            result["accessToken"] = self._token(user, scopes, _minutes(fields.get("expiresInMinutes")))
        self.users[user.id] = user
        return 201, result

    def _issue(self, identity_id: str | None, body: Any) -> tuple[int, Any]:
        fields = _object(body, ("scopes", "expiresInMinutes"), required=True)
        scopes = _scopes(fields.get("scopes"), "scopes")
        return 200, self._token(self._user(identity_id), scopes, _minutes(fields.get("expiresInMinutes")))

    def _revoke(self, identity_id: str | None, _: Any) -> tuple[int, Any]:
        self._user(identity_id).token_ids.clear()
        return 204, None

    def _delete(self, identity_id: str | None, _: Any) -> tuple[int, Any]:
        del self.users[self._user(identity_id).id]
        return 204, None

    def _user(self, identity_id: str | None) -> IssuedUser:
        user = self.users.get(identity_id or "")
        if user is None:
            raise AcsRestError(
                404, "IdentityNotFound", "no identity with this id was issued by this resource"
            )
        return user

    def _token(self, user: IssuedUser, scopes: list[str], minutes: int) -> dict[str, str]:
        now = int(time.time())
        expires = now + minutes * 60
        token_id = str(uuid.uuid4())
        claims = {
            "skypeid": user.id.removeprefix(_USER_PREFIX),
            "scp": 1792,  # as ACS's tokens carry it; the scopes themselves are in acsScope
            "acsScope": ",".join(scopes),  # the ACS Calling SDK refuses a token without "voip" here
            "csi": str(now),
            "resourceId": self.resource_id,
            "iat": now,
            "exp": expires,
            "jti": token_id,
        }
        user.token_ids.add(token_id)
        expires_on = datetime.fromtimestamp(expires, UTC).isoformat().replace("+00:00", "Z")
        return {"token": jwt.encode(claims, self._secret, algorithm=_ALGORITHM), "expiresOn": expires_on}


def _object(body: Any, allowed: tuple[str, ...], *, required: bool) -> dict[str, Any]:
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise AcsRestError(400, "BadRequest", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise AcsRestError(400, "BadRequest", f"unknown field(s) {unknown}; allowed: {list(allowed)}")
    return body


def _scopes(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(scope, str) for scope in value):
        raise AcsRestError(400, "BadRequest", f"{name} must be a non-empty list of scopes")
    unknown = sorted(set(value) - set(SCOPES))
    if unknown:
        raise AcsRestError(400, "BadRequest", f"unknown scope(s) {unknown}; known: {list(SCOPES)}")
    return list(value)


def _minutes(value: Any) -> int:
    if value is None:
        return MAX_MINUTES
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_MINUTES <= value <= MAX_MINUTES:
        raise AcsRestError(
            400, "BadRequest", f"expiresInMinutes must be an integer within [{MIN_MINUTES}, {MAX_MINUTES}]"
        )
    return value
