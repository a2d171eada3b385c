"""Shared HTTP plumbing of the functions: blueprints, JSON responses, the misconfiguration and ACS
failure answers."""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar

import azure.functions as func

from common.acs_requests import AcsError
from common.telemetry import CallIds

# The call an invocation turned out to be about, so its request record joins the call's operation.
CURRENT_CALL: ContextVar[CallIds | None] = ContextVar("current_call", default=None)

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def blueprint() -> func.Blueprint:
    # azure-functions 1.26 leaves Blueprint.__init__ unannotated; one ignore here instead of one per module.
    return func.Blueprint()  # type: ignore[no-untyped-call]


def json_response(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, headers=dict(headers or {}), mimetype="application/json"
    )


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return json_response({"error": message}, status=status, headers=headers)


def misconfigured(names: Sequence[str]) -> func.HttpResponse:
    # Names only: the values (and the detailed problems, logged at start-up) stay out of responses.
    return error_response(
        503, f"misconfigured: {', '.join(names)} missing or invalid (details in the function log)"
    )


def acs_failed(exc: AcsError, refused: str) -> func.HttpResponse:
    """An API client's answer when ACS failed: 503 when it gave no answer (a retry may help), 502
    when it refused, after `refused` ("ACS refused the call")."""
    if exc.status is None:
        return error_response(503, f"ACS is unavailable, try again: {exc}")
    return error_response(502, f"{refused}: {exc}")


def traced(name: str) -> Callable[[Handler], Handler]:
    """Record each invocation as a request (incoming HTTP request telemetry), joined to its call."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(req: func.HttpRequest) -> func.HttpResponse:
            from .runtime import runtime  # noqa: PLC0415 - runtime imports this module

            telemetry = runtime().telemetry
            token = CURRENT_CALL.set(None)
            status = 500
            with telemetry.operation(f"{req.method} {name}") as operation:
                try:
                    response = await handler(req)
                    status = response.status_code
                    return response
                finally:
                    url = req.url.split("?", 1)[0]  # never the function key
                    telemetry.request(operation, url=url, status=status, ids=CURRENT_CALL.get())
                    CURRENT_CALL.reset(token)

        return wrapper

    return decorate
