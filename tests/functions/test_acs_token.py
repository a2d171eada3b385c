"""POST /api/token: the function, the real Identity SDK and the stand-in's Identity API, end to end."""

from __future__ import annotations

import base64
import logging
import secrets
import time
from datetime import datetime

import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from tests.functions.conftest import audit_events, body_of, invoke

pytestmark = pytest.mark.usefixtures("control_env")


@pytest.mark.parametrize("body", [b"", b"{}", b" {} \n"])
async def test_issues_a_voip_user_of_the_resource_for_an_hour(
    acs: CallAutomationStandIn, caplog: pytest.LogCaptureFixture, body: bytes
) -> None:
    caplog.set_level(logging.INFO)
    response = await invoke("issue_token", body=body)

    assert response.status_code == 200
    issued = body_of(response)
    assert set(issued) == {"userId", "token", "expiresOn"}
    assert list(acs.identities.users) == [issued["userId"]]
    assert acs.identities.user_of(issued["token"]) == issued["userId"]
    minutes = (datetime.fromisoformat(issued["expiresOn"]).timestamp() - time.time()) / 60
    assert 59 < minutes <= 60
    sent = await acs.wait_for("identity_create")
    assert sent.body == {"createTokenWithScopes": ["voip"], "expiresInMinutes": 60}
    assert acs.rejected == []  # the SDK's HMAC signature checked out
    assert [(e["user_id"], e["expires_on"]) for e in audit_events(caplog, "AcsUserIssued")] == [
        (issued["userId"], issued["expiresOn"])
    ]
    assert issued["token"] not in caplog.text  # audited and logged, never the token


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"scopes": ["chat"]}', "unknown field(s): scopes; this route takes none (body empty or {})"),
        (b'{"userId": "8:acs:x", "a": 1, "b": 2, "c": 3}', "unknown field(s): a, b, c, ...;"),
        (b"[]", "body must be empty or {}"),
        (b"null", "body must be empty or {}"),
        (b"token please", "body is not valid JSON"),
    ],
)
async def test_any_other_body_is_400_and_issues_nothing(
    acs: CallAutomationStandIn, body: bytes, message: str
) -> None:
    response = await invoke("issue_token", body=body)
    assert response.status_code == 400
    assert message in body_of(response)["error"]
    assert acs.requests == []


async def test_unusable_acs_settings_are_503_naming_them(control_env: pytest.MonkeyPatch) -> None:
    control_env.delenv("AZURE_COMMUNICATION_CONNECTION_STRING")
    response = await invoke("issue_token")
    assert response.status_code == 503
    assert "ACS_ENDPOINT, AZURE_COMMUNICATION_CONNECTION_STRING" in body_of(response)["error"]


async def test_acs_refusing_is_502_with_its_message(acs: CallAutomationStandIn) -> None:
    acs.fail_next("identity_create", 403, "The resource has no Identity quota left", code="Forbidden")
    response = await invoke("issue_token")
    assert response.status_code == 502
    assert body_of(response)["error"] == (
        "ACS refused to issue a user: HTTP 403 (Forbidden): The resource has no Identity quota left"
    )
    assert acs.identities.users == {}


async def test_a_wrong_access_key_is_acs_refusing(
    acs: CallAutomationStandIn, control_env: pytest.MonkeyPatch
) -> None:
    wrong = base64.b64encode(secrets.token_bytes(64)).decode()
    control_env.setenv("AZURE_COMMUNICATION_CONNECTION_STRING", f"endpoint={acs.endpoint};accesskey={wrong}")
    response = await invoke("issue_token")
    assert response.status_code == 502
    assert "HTTP 401 (7509)" in body_of(response)["error"]
    assert acs.identities.users == {} and acs.rejected[0][0] == "/identities"


async def test_acs_unreachable_is_503(acs: CallAutomationStandIn) -> None:
    await acs.close()
    response = await invoke("issue_token")
    assert response.status_code == 503
    assert "ACS is unavailable, try again" in body_of(response)["error"]
