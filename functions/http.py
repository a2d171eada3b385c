"""Shared HTTP plumbing of the functions: blueprints, JSON responses, the misconfiguration answer."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import azure.functions as func


def blueprint() -> func.Blueprint:
    # azure-functions 1.26 leaves Blueprint.__init__ unannotated; one ignore here instead of one per module.
    return func.Blueprint()  # type: ignore[no-untyped-call]


def json_response(
    body: object, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, headers=dict(headers or {}), mimetype="application/json"
    )


def error_response(status: int, message: str) -> func.HttpResponse:
    return json_response({"error": message}, status=status)


def misconfigured(names: Sequence[str]) -> func.HttpResponse:
    # Names only: the values (and the detailed problems, logged at start-up) stay out of responses.
    return error_response(
        503, f"misconfigured: {', '.join(names)} missing or invalid (details in the function log)"
    )
