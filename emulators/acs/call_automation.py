"""Call Automation REST stand-in: the seed of the local ACS emulator.

It speaks the data-plane REST surface that ``azure-communication-callautomation`` 1.6.0 uses, so the real
SDK clients (sync and ``aio``) can be pointed at ``http://127.0.0.1:<port>/``.  Every request must carry a
valid ACS HMAC-SHA256 signature (or a bearer token a test explicitly vouches for), because a stand-in that
accepted anything would hide signing bugs that real ACS answers with 401.

Scope: call-connection lifecycle (answer/create/reject/redirect/get/terminate/hang-up/transfer), and
the Identity API (users and access tokens, ``identity.py``) behind the same endpoint and key. What
ACS does *around* those requests (Event Grid, callbacks, the media leg) lives in ``emulator.py``, which
registers the incoming calls it announced and observes the operations through ``observers``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from common.identifiers import IdentifierError, from_raw_id, from_wire
from emulators.serving import serve

from .identity import ROUTES as IDENTITY_ROUTES
from .identity import Identities
from .rest_errors import AcsRestError, acs_error_response

__all__ = ["CallAutomationStandIn", "CallState", "IncomingCall", "RecordedRequest"]

_log = logging.getLogger(__name__)

# ACS refuses signatures whose x-ms-date is more than 15 minutes away from its clock (replay window).
_MAX_CLOCK_SKEW = timedelta(minutes=15)
_HMAC_SCHEME = "HMAC-SHA256 "
_REQUIRED_SIGNED_HEADERS = frozenset({"x-ms-date", "host", "x-ms-content-sha256"})
# Error code real ACS returns for a bad HMAC ({"error":{"code":"7509","message":"HMAC-SHA256 validation
# failed"}}, seen in the wild). Codes for the other errors below are descriptive, not ACS's numeric ones.
_HMAC_ERROR_CODE = "7509"
_HMAC_ERROR_MESSAGE = "HMAC-SHA256 validation failed"

_CALL_ID = r"(?P<call_id>[^/:]+)"
# (method, path regex, operation). The SDK's REST paths use ':action' suffixes, which aiohttp's router
# would fold into the {id} placeholder, so routing is done here by regex.
_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/calling/callConnections$"), "create"),
    ("POST", re.compile(r"^/calling/callConnections:answer$"), "answer"),
    ("POST", re.compile(r"^/calling/callConnections:reject$"), "reject"),
    ("POST", re.compile(r"^/calling/callConnections:redirect$"), "redirect"),
    ("GET", re.compile(rf"^/calling/callConnections/{_CALL_ID}$"), "get"),
    ("DELETE", re.compile(rf"^/calling/callConnections/{_CALL_ID}$"), "hangup_leg"),
    ("POST", re.compile(rf"^/calling/callConnections/{_CALL_ID}:terminate$"), "terminate"),
    ("POST", re.compile(rf"^/calling/callConnections/{_CALL_ID}:transferToParticipant$"), "transfer"),
    *IDENTITY_ROUTES,
)


@dataclass
class RecordedRequest:
    """One authenticated request as the stand-in saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or None for an empty body
    operation: str  # "answer" | "create" | ... | "identity_create" | ... | "unknown"
    call_connection_id: str | None
    identity_id: str | None = None  # the user an Identity request names in its path
    # True when a Repeatability-Request-ID replay was answered from the cache (no second effect).
    replayed: bool = False
    at: float = field(default_factory=time.monotonic)  # when it arrived, to check what came first


@dataclass
class IncomingCall:
    """A call announced through Event Grid and waiting to be answered, rejected or redirected."""

    incoming_call_context: str
    correlation_id: str
    server_call_id: str
    caller: dict[str, Any]  # identifier models, wire shape
    callee: dict[str, Any]
    outcome: str | None = None  # "answered" | "rejected:<reason>" | "redirected"


@dataclass
class CallState:
    """A call connection the stand-in knows; later callback/media/Event Grid work extends this."""

    call_connection_id: str
    server_call_id: str
    correlation_id: str
    state: str  # CallConnectionState wire value: "connecting" | "connected" | "transferring" | ...
    callback_uri: str
    source: dict[str, Any] | None = None  # CommunicationIdentifierModel (wire shape, with kind/rawId)
    targets: list[dict[str, Any]] = field(default_factory=list)
    answered_by: dict[str, Any] | None = None  # CommunicationUserIdentifierModel
    source_caller_id_number: dict[str, Any] | None = None  # PhoneNumberIdentifierModel
    source_display_name: str | None = None
    incoming_call_context: str | None = None
    operation_context: str | None = None
    media_streaming_options: dict[str, Any] | None = None  # as sent by the client (wire keys)
    media_streaming_subscription_id: str | None = None
    media_streaming_state: str = "disabled"  # MediaStreamingSubscriptionState: disabled|inactive|active
    transfer_target: dict[str, Any] | None = None

    def to_properties(self) -> dict[str, Any]:
        """CallConnectionProperties JSON, shaped for the SDK's generated deserialiser."""
        props: dict[str, Any] = {
            "callConnectionId": self.call_connection_id,
            "serverCallId": self.server_call_id,
            "targets": self.targets,
            "callConnectionState": self.state,
            "callbackUri": self.callback_uri,
            "correlationId": self.correlation_id,
        }
        optional = {
            "source": self.source,
            "answeredBy": self.answered_by,
            "sourceCallerIdNumber": self.source_caller_id_number,
            "sourceDisplayName": self.source_display_name,
        }
        props.update({k: v for k, v in optional.items() if v is not None})
        if self.media_streaming_options is not None:
            props["mediaStreamingSubscription"] = {
                "id": self.media_streaming_subscription_id,
                "state": self.media_streaming_state,
                "subscribedContentTypes": [self.media_streaming_options.get("contentType", "audio")],
            }
        return props


@dataclass
class _InjectedFailure:
    status: int
    code: str
    message: str
    remaining: int


def _normalise_identifier(model: Any, what: str) -> dict[str, Any]:
    """Fill in the ``kind``/``rawId`` the service adds in responses (the SDK's deserialiser needs rawId)."""
    try:
        identity = from_wire(model, what)
    except IdentifierError as exc:
        raise AcsRestError(400, "BadRequest", str(exc)) from None
    return {**model, "kind": identity.kind, "rawId": identity.raw_id}


def _require_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise AcsRestError(400, "BadRequest", f"'{key}' is required")
    return value


def _new_server_call_id() -> str:
    # Real serverCallIds are base64 of a conversation URL; keep the shape so code that decodes them works.
    url = f"https://stand-in.invalid/conv/{uuid.uuid4()}?i=1&e=1"
    return base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


class CallAutomationStandIn:
    """Call Automation REST stand-in served by aiohttp on 127.0.0.1."""

    def __init__(
        self,
        *,
        access_key: str | None = None,
        token_validator: Callable[[str], bool] | None = None,
        resource_id: str | None = None,
    ) -> None:
        # ACS keys are 64 random bytes, base64-encoded; the SDK base64-decodes the key before signing.
        self.access_key = access_key or base64.b64encode(secrets.token_bytes(64)).decode()
        try:
            self._key_bytes = base64.b64decode(self.access_key, validate=True)
        except binascii.Error as exc:
            raise ValueError("access_key must be base64, as ACS access keys are") from exc
        self._token_validator = token_validator
        self.requests: list[RecordedRequest] = []
        self.rejected: list[tuple[str, str]] = []
        self.calls: dict[str, CallState] = {}
        # Identity the service answers as (answeredBy) and the default source of outbound calls.
        self.resource_id = resource_id or str(uuid.uuid4())
        self.incoming: dict[str, IncomingCall] = {}  # by incomingCallContext
        # Called after each operation that took effect (not replays, not errors), with its call if any.
        self.observers: list[Callable[[RecordedRequest, CallState | None], None]] = []
        self.bot_user_id = f"8:acs:{self.resource_id}_{uuid.uuid4()}"
        self.identities = Identities(self.resource_id)  # the users (softphones) this resource issued
        self._endpoint: str | None = None
        self._runner: web.AppRunner | None = None
        self._failures: dict[str, _InjectedFailure] = {}
        self._repeatable: dict[tuple[str, str | None, str], tuple[int, Any]] = {}
        self._claimed: set[int] = set()  # indexes of self.requests already handed out by wait_for
        self._changed = asyncio.Event()
        self._handlers: dict[str, Callable[[RecordedRequest], tuple[int, Any]]] = {
            "answer": self._answer,
            "create": self._create,
            "reject": self._reject,
            "redirect": self._redirect,
            "get": self._get,
            "terminate": self._terminate,
            "hangup_leg": self._hangup_leg,
            "transfer": self._transfer,
            **{operation: self._identity for _, _, operation in IDENTITY_ROUTES},
        }

    # ------------------------------------------------------------------ lifecycle

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>/``: bare scheme://host:port/ because the HMAC covers the host."""
        if self._endpoint is None:
            raise RuntimeError("CallAutomationStandIn is not serving yet; await serve() first")
        return self._endpoint

    @property
    def connection_string(self) -> str:
        # Note: the SDK's from_connection_string() rewrites http:// to https://; build clients from
        # endpoint + AzureKeyCredential(access_key) instead.
        return f"endpoint={self.endpoint};accesskey={self.access_key}"

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("already serving")
        self._runner, base = await serve(self.make_app(), host, port)
        self._endpoint = base + "/"
        return self._endpoint

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> CallAutomationStandIn:
        await self.serve()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ test controls

    async def wait_for(
        self,
        operation: str,
        *,
        timeout: float = 5.0,
        call_connection_id: str | None = None,
    ) -> RecordedRequest:
        """Return the oldest matching request not already returned by wait_for, waiting if needed.

        Each request is handed out once, so successive waits see successive requests.
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed
                    for index, rec in enumerate(self.requests):
                        if index in self._claimed or rec.operation != operation:
                            continue
                        if call_connection_id is not None and rec.call_connection_id != call_connection_id:
                            continue
                        self._claimed.add(index)
                        return rec
                    await changed.wait()
        except TimeoutError:
            seen = [(r.operation, r.call_connection_id) for r in self.requests]
            raise TimeoutError(
                f"no {operation!r} request (call_connection_id={call_connection_id}) within {timeout}s; "
                f"seen: {seen}; rejected: {self.rejected}"
            ) from None

    def fail_next(
        self, operation: str, status: int, message: str, *, code: str | None = None, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests of ``operation`` with an ACS-shaped error.

        Beware: azure-core re-sends 408/429/500/502/503/504 (retry_total=3 by default), so such a status
        only reaches the caller if ``times`` exceeds the client's retries.
        """
        self._failures[operation] = _InjectedFailure(status, code or str(status), message, times)

    # ------------------------------------------------------------------ HTTP plumbing

    def _record(self, rec: RecordedRequest) -> None:
        self.requests.append(rec)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        response = await self._handle(request)
        # The SDK sends x-ms-return-client-request-id: true; ACS echoes the id so logs can be correlated.
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id:
            response.headers["x-ms-client-request-id"] = client_request_id
        return response

    async def _handle(self, request: web.Request) -> web.Response:
        raw_body = await request.read()
        failure = self._auth_failure(request, raw_body)
        if failure is not None:
            code, reason = failure
            _log.warning("stand-in refused %s %s: %s", request.method, request.path, reason)
            self.rejected.append((request.path, reason))
            message = _HMAC_ERROR_MESSAGE if code == _HMAC_ERROR_CODE else reason
            return acs_error_response(401, code, message)

        operation, groups = "unknown", {}
        for method, pattern, op in _ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                operation, groups = op, match.groupdict()
                break
        call_id = groups.get("call_id")

        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
            operation=operation,
            call_connection_id=call_id,
            identity_id=groups.get("identity_id"),
        )
        self._record(rec)

        if operation == "unknown":
            return acs_error_response(404, "NotFound", f"no route for {request.method} {request.path}")
        if not request.query.get("api-version"):
            return acs_error_response(
                400, "MissingApiVersionParameter", "api-version query parameter is required"
            )
        if raw_body and isinstance(body, str):
            return acs_error_response(400, "BadRequest", "request body is not valid JSON")

        injected = self._failures.get(operation)
        if injected is not None:
            injected.remaining -= 1
            if injected.remaining <= 0:
                del self._failures[operation]
            return acs_error_response(injected.status, injected.code, injected.message)

        repeat_id = request.headers.get("Repeatability-Request-ID")
        repeat_key = (operation, call_id, repeat_id) if repeat_id else None
        if repeat_key is not None and repeat_key in self._repeatable:
            rec.replayed = True
            status, payload = self._repeatable[repeat_key]
            return self._respond(status, payload)

        try:
            status, payload = self._handlers[operation](rec)
        except AcsRestError as err:
            return acs_error_response(err.status, err.code, err.message)
        # Only successes are replayable, so a client retry after an error still gets a real attempt.
        if repeat_key is not None:
            self._repeatable[repeat_key] = (status, payload)
        call = self.calls.get(rec.call_connection_id or "")
        if call is None and isinstance(payload, dict):
            call = self.calls.get(payload.get("callConnectionId", ""))
        for observer in self.observers:
            observer(rec, call)
        return self._respond(status, payload)

    @staticmethod
    def _respond(status: int, payload: Any) -> web.Response:
        if payload is None:
            return web.Response(status=status)
        return web.json_response(payload, status=status)

    def _auth_failure(self, request: web.Request, body: bytes) -> tuple[str, str] | None:
        """None if the request is authentic, else (ACS error code, reason)."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if self._token_validator is None:
                return "Unauthorized", "bearer token refused: no token_validator configured"
            if self._token_validator(auth[len("Bearer ") :].strip()):
                return None
            return "Unauthorized", "bearer token refused by token_validator"
        if not auth.startswith(_HMAC_SCHEME):
            return "Unauthorized", "missing or unsupported Authorization header"
        reason = self._hmac_failure(request, auth, body)
        return None if reason is None else (_HMAC_ERROR_CODE, reason)

    def _hmac_failure(self, request: web.Request, auth: str, body: bytes) -> str | None:

        params: dict[str, str] = {}
        for part in auth[len(_HMAC_SCHEME) :].split("&"):
            name, _, value = part.partition("=")  # Signature is base64: only split on the first '='
            params[name.strip()] = value.strip()
        signed = [h.strip().lower() for h in params.get("SignedHeaders", "").split(";") if h.strip()]
        signature = params.get("Signature", "")
        if not set(signed) >= _REQUIRED_SIGNED_HEADERS or not signature:
            return f"SignedHeaders must include {sorted(_REQUIRED_SIGNED_HEADERS)} and a Signature"

        date_header = request.headers.get("x-ms-date", "")
        try:
            sent_at = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            return f"unparseable x-ms-date {date_header!r}"
        if sent_at.tzinfo is None:
            sent_at = sent_at.replace(tzinfo=UTC)
        skew = datetime.now(UTC) - sent_at
        if skew > _MAX_CLOCK_SKEW:
            return f"x-ms-date is {skew} old (limit {_MAX_CLOCK_SKEW})"
        if -skew > _MAX_CLOCK_SKEW:
            return f"x-ms-date is {-skew} in the future (limit {_MAX_CLOCK_SKEW})"

        content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if not hmac.compare_digest(request.headers.get("x-ms-content-sha256", ""), content_hash):
            return "x-ms-content-sha256 does not match the body"

        # The SDK's HMACCredentialsPolicy strips only the scheme from the endpoint it was given, so an
        # endpoint ending in '/' (as ours does) signs 'host:port/'. Accept that variant alongside the bare
        # Host header; both are byte-for-byte what the unmodified SDK produces. The Identity SDK signs
        # the percent-decoded path (decode_url=True: `/identities/8:acs:...`), whatever went on the wire.
        paths = {request.raw_path, unquote(request.raw_path)}
        for host, path in itertools.product((request.host, request.host + "/"), paths):
            values = [host if h == "host" else request.headers.get(h, "") for h in signed]
            string_to_sign = f"{request.method.upper()}\n{path}\n{';'.join(values)}"
            expected = base64.b64encode(
                hmac.new(self._key_bytes, string_to_sign.encode(), hashlib.sha256).digest()
            ).decode()
            if hmac.compare_digest(signature, expected):
                return None
        return "signature mismatch (wrong key, or path/query/host/date differ from what was signed)"

    # ------------------------------------------------------------------ operations

    @staticmethod
    def _json_body(rec: RecordedRequest) -> dict[str, Any]:
        if not isinstance(rec.body, dict):
            raise AcsRestError(400, "BadRequest", "a JSON object body is required")
        return rec.body

    def _live_call(self, rec: RecordedRequest) -> CallState:
        call = self.calls.get(rec.call_connection_id or "")
        # An ended call is gone as far as the REST API is concerned; it stays in self.calls for inspection.
        if call is None or call.state == "disconnected":
            raise AcsRestError(404, "NotFound", f"call connection {rec.call_connection_id} not found")
        return call

    @staticmethod
    def _media_streaming(body: dict[str, Any]) -> dict[str, Any] | None:
        options = body.get("mediaStreamingOptions")
        if options is None:
            return None
        if not isinstance(options, dict):
            raise AcsRestError(400, "BadRequest", "mediaStreamingOptions must be an object")
        for key in ("transportType", "audioChannelType"):
            if not options.get(key):
                raise AcsRestError(400, "BadRequest", f"mediaStreamingOptions.{key} is required")
        if options["transportType"] == "websocket":
            url = options.get("transportUrl")
            if not isinstance(url, str) or not url.startswith(("wss://", "ws://")):
                raise AcsRestError(
                    400, "BadRequest", "mediaStreamingOptions.transportUrl must be a ws(s):// URL"
                )
        return options

    def _new_call(self, body: dict[str, Any], state: str) -> CallState:
        media = self._media_streaming(body)
        call = CallState(
            call_connection_id=str(uuid.uuid4()),
            server_call_id=_new_server_call_id(),
            correlation_id=str(uuid.uuid4()),
            state=state,
            callback_uri=_require_str(body, "callbackUri"),
            operation_context=body.get("operationContext"),
            media_streaming_options=media,
        )
        if media is not None:
            call.media_streaming_subscription_id = str(uuid.uuid4())
            call.media_streaming_state = "active" if media.get("startMediaStreaming") else "inactive"
        return call

    def _settle_incoming(self, context: str, outcome: str) -> IncomingCall | None:
        """Mark an announced call as handled; a call can be answered, rejected or redirected once."""
        incoming = self.incoming.get(context)
        if incoming is None:
            return None
        if incoming.outcome is not None:
            raise AcsRestError(400, "8523", f"the incoming call was already {incoming.outcome.split(':')[0]}")
        incoming.outcome = outcome
        return incoming

    def _answer(self, rec: RecordedRequest) -> tuple[int, Any]:
        body = self._json_body(rec)
        context = _require_str(body, "incomingCallContext")
        incoming = self._settle_incoming(context, "answered")
        call = self._new_call(body, "connected")
        call.incoming_call_context = context
        if incoming is not None:  # the connection keeps the ids ACS announced the call with
            call.correlation_id, call.server_call_id = incoming.correlation_id, incoming.server_call_id
            call.source, call.targets = incoming.caller, [incoming.callee]
        call.answered_by = body.get("answeredBy") or {"id": self.bot_user_id}
        self.calls[call.call_connection_id] = call
        return 200, call.to_properties()

    def _create(self, rec: RecordedRequest) -> tuple[int, Any]:
        body = self._json_body(rec)
        raw_targets = body.get("targets")
        if not isinstance(raw_targets, list) or not raw_targets:
            raise AcsRestError(400, "BadRequest", "'targets' must be a non-empty list")
        targets = [_normalise_identifier(t, "targets[]") for t in raw_targets]
        caller_id = body.get("sourceCallerIdNumber")
        # ACS needs a caller id it owns to dial out to the PSTN.
        if caller_id is None and any(t["kind"] == "phoneNumber" for t in targets):
            raise AcsRestError(400, "BadRequest", "sourceCallerIdNumber is required for PSTN targets")
        call = self._new_call(body, "connecting")
        call.targets = targets
        user_id = (body.get("source") or {}).get("id") or self.bot_user_id
        call.source = from_raw_id(user_id).wire()
        call.source_caller_id_number = caller_id
        call.source_display_name = body.get("sourceDisplayName")
        self.calls[call.call_connection_id] = call
        return 201, call.to_properties()

    def _reject(self, rec: RecordedRequest) -> tuple[int, Any]:
        body = self._json_body(rec)
        context = _require_str(body, "incomingCallContext")
        reason = body.get("callRejectReason", "none")
        if reason not in ("none", "busy", "forbidden"):
            raise AcsRestError(400, "BadRequest", f"unknown callRejectReason {reason!r}")
        self._settle_incoming(context, f"rejected:{reason}")
        return 204, None

    def _redirect(self, rec: RecordedRequest) -> tuple[int, Any]:
        body = self._json_body(rec)
        context = _require_str(body, "incomingCallContext")
        _normalise_identifier(body.get("target"), "target")
        self._settle_incoming(context, "redirected")
        return 204, None

    def _get(self, rec: RecordedRequest) -> tuple[int, Any]:
        return 200, self._live_call(rec).to_properties()

    def _terminate(self, rec: RecordedRequest) -> tuple[int, Any]:
        self._live_call(rec).state = "disconnected"
        return 204, None

    def _hangup_leg(self, rec: RecordedRequest) -> tuple[int, Any]:
        # Removing the app's own leg ends this call connection for the app.
        self._live_call(rec).state = "disconnected"
        return 204, None

    def _identity(self, rec: RecordedRequest) -> tuple[int, Any]:
        return self.identities.handle(rec.operation, rec.identity_id, rec.body)

    def _transfer(self, rec: RecordedRequest) -> tuple[int, Any]:
        call = self._live_call(rec)
        body = self._json_body(rec)
        call.transfer_target = _normalise_identifier(body.get("targetParticipant"), "targetParticipant")
        call.state = "transferring"
        return 202, {"operationContext": body.get("operationContext")}
