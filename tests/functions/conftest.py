"""Calling the registered functions the supported way, against the Call Automation stand-in.

Requests are `func.HttpRequest`s handed to the user functions that `function_app.app` registered;
the real async CallAutomationClient sends its requests to `CallAutomationStandIn` (HMAC-verified),
and settings come from the environment, as in Azure.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
import pytest

from all_in_one.functions_host import registered_functions
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer
from functions import runtime
from functions.settings import SETTING_NAMES
from tests.conftest import AUDIENCE

OUR_NUMBER = "+14255550100"
CALLER = "+819012345678"
CALLBACK_HOST = "https://functions.example"
MEDIA_HOST = "wss://media.example"
OUR_USER = f"8:acs:{AUDIENCE}_00000000-0000-0000-0000-00000000b07"


def route_of(name: str) -> str:
    return registered_functions()[name].route


async def invoke(
    name: str,
    *,
    method: str = "POST",
    body: bytes | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> func.HttpResponse:
    if json_body is not None:
        body = json.dumps(json_body).encode()
    request = func.HttpRequest(
        method,
        f"{CALLBACK_HOST}/api/{route_of(name)}",
        headers=headers or {},
        params=params or {},
        route_params={},
        body=body or b"",
    )
    response: func.HttpResponse = await registered_functions()[name].handler(request)
    return response


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


def audit_events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """The audit events of that name, as written locally (one JSON log line each, logger `audit`)."""
    records = (json.loads(r.getMessage()) for r in caplog.records if r.name == "audit")
    return [record for record in records if record.get("event") == name]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting leaks in from the developer's shell."""
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def control_env(
    clean_env: pytest.MonkeyPatch, acs: CallAutomationStandIn, issuer: AcsTokenIssuer
) -> pytest.MonkeyPatch:
    env = {
        "ACS_RESOURCE_ID": AUDIENCE,
        "AZURE_COMMUNICATION_CONNECTION_STRING": acs.connection_string,
        "ACS_JWT_ISSUER": issuer.issuer,
        "ACS_OPENID_CONFIG_URL": issuer.openid_config_url,
        "CALLBACK_URI_HOST": CALLBACK_HOST,
        "MEDIA_HOST_URL": MEDIA_HOST,
        "ACS_PHONE_NUMBER": OUR_NUMBER,
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    return clean_env


@pytest.fixture(autouse=True)
async def fresh_runtime() -> AsyncIterator[None]:
    # Async clients are bound to the loop that made them; every test has its own loop.
    await runtime.reset()
    yield
    await runtime.reset()


def incoming_call_event(
    *,
    to: str = OUR_NUMBER,
    caller: str = CALLER,
    correlation_id: str | None = None,
    context: str = "incoming-call-context",
) -> dict[str, Any]:
    """An IncomingCall in the Event Grid schema, shaped like ACS's (protocols.md §2.4)."""

    def identifier(raw: str) -> dict[str, Any]:
        if raw.startswith("+"):
            return {"kind": "phoneNumber", "rawId": f"4:{raw}", "phoneNumber": {"value": raw}}
        return {"kind": "communicationUser", "rawId": raw, "communicationUser": {"id": raw}}

    correlation_id = correlation_id or str(uuid.uuid4())
    return {
        "id": str(uuid.uuid4()),
        "topic": "/subscriptions/x/resourcegroups/rg/providers/microsoft.communication/communicationservices/acs",
        "subject": f"/caller/4:{caller}/recipient/4:{to}",
        "eventType": "Microsoft.Communication.IncomingCall",
        "eventTime": "2025-01-02T03:04:05.1234567Z",
        "dataVersion": "1.0",
        "metadataVersion": "1",
        "data": {
            "to": identifier(to),
            "from": identifier(caller),
            "serverCallId": f"server-{correlation_id}",
            "callerDisplayName": "A caller",
            "incomingCallContext": context,
            "correlationId": correlation_id,
        },
    }


def as_cloud_event(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema."""
    return {
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "specversion": "1.0",
        "data": event["data"],
    }


def callback_event(event_type: str, call_connection_id: str, **data: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "source": f"calling/callConnections/{call_connection_id}",
        "type": f"Microsoft.Communication.{event_type}",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "time": "2026-11-22T01:02:04Z",
        "subject": f"calling/callConnections/{call_connection_id}",
        "data": {
            "callConnectionId": call_connection_id,
            "serverCallId": "server-call",
            "correlationId": "corr-1",
            **data,
        },
    }
