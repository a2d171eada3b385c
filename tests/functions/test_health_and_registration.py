"""GET /api/health tells what is configured without a secret; the registered routes and auth levels."""

from __future__ import annotations

import base64
import json
import platform
import secrets

import pytest

from all_in_one.functions_host import registered_functions
from functions import runtime as functions_runtime
from tests.functions.conftest import body_of, invoke


def substrings(secret: str, length: int = 8) -> set[str]:
    return {secret[i : i + length] for i in range(len(secret) - length + 1)}


@pytest.mark.usefixtures("control_env")
async def test_healthy_configuration() -> None:
    response = await invoke("health", method="GET")
    assert response.status_code == 200
    health = body_of(response)
    assert health["status"] == "ok"
    assert all(entry["valid"] for entry in health["settings"].values())
    assert health["settings"]["ACS_RESOURCE_ID"] == {"present": True, "valid": True}
    assert health["settings"]["ACS_ENDPOINT"] == {"present": False, "valid": True}
    assert health["settings"]["OUTBOUND_ALLOW_LIST"] == {"present": False, "valid": True}
    assert "restaurant" in health["profiles"]
    # Anonymous: versions would tell an outsider which known flaws to try.
    assert set(health) == {"status", "settings", "profiles"}
    text = response.get_body().decode()
    for version in ("1.26.0", "1.6.0", "0.1.0", platform.python_version()):
        assert version not in text


async def test_missing_settings_are_reported_false(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("MEDIA_HOST_URL", "ftp://media.example")
    response = await invoke("health", method="GET")
    assert response.status_code == 200  # health answers whatever the configuration
    health = body_of(response)
    assert health["status"] == "misconfigured"
    assert health["settings"]["ACS_RESOURCE_ID"] == {"present": False, "valid": False}
    assert health["settings"]["CALLBACK_URI_HOST"] == {"present": False, "valid": False}
    assert health["settings"]["MEDIA_HOST_URL"] == {"present": True, "valid": False}
    assert health["settings"]["ACS_ENDPOINT"]["valid"] is False  # neither ACS client setting is set
    assert health["settings"]["CALLER_DENY_LIST"] == {"present": False, "valid": True}
    assert "ftp://" not in response.get_body().decode()


async def test_a_twilio_only_deployment_is_healthy(clean_env: pytest.MonkeyPatch) -> None:
    """The all-in-one on Fly.io serves Twilio numbers and sets no ACS setting: that is no fault."""
    for name, value in {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
        "CALLBACK_URI_HOST": "https://voice.example",
        "MEDIA_HOST_URL": "wss://voice.example",
    }.items():
        clean_env.setenv(name, value)
    health = body_of(await invoke("health", method="GET"))
    assert health["status"] == "ok"
    assert health["settings"]["ACS_RESOURCE_ID"] == {"present": False, "valid": False}  # still told as it is

    clean_env.setenv("ACS_ENDPOINT", "https://contoso.communication.azure.com")  # half an ACS setup is
    await functions_runtime.reset()  # settings are read once per process
    assert body_of(await invoke("health", method="GET"))["status"] == "misconfigured"  # a fault again


async def test_health_never_shows_a_secret(clean_env: pytest.MonkeyPatch) -> None:
    access_key = base64.b64encode(secrets.token_bytes(64)).decode()
    connection_string = f"endpoint=https://contoso-voice.communication.azure.com/;accesskey={access_key}"
    api_key = secrets.token_hex(16)
    insights = (
        "InstrumentationKey=9f3c2a71-5b4e-4d0a-8c6f-2e1b7a9d4c30;"
        "IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/;"
        "LiveEndpoint=https://westeurope.livediagnostics.monitor.azure.com/;"
        "ApplicationId=0c2b7e4f-1a3d-4f5e-9b8a-7c6d5e4f3a2b"
    )
    clean_env.setenv("AZURE_COMMUNICATION_CONNECTION_STRING", connection_string)
    clean_env.setenv("AZURE_OPENAI_API_KEY", api_key)
    clean_env.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", insights)

    response = await invoke("health", method="GET")
    text = response.get_body().decode()
    health = json.loads(text)
    assert health["settings"]["AZURE_COMMUNICATION_CONNECTION_STRING"] == {"present": True, "valid": True}
    assert health["settings"]["APPLICATIONINSIGHTS_CONNECTION_STRING"] == {"present": True, "valid": True}
    assert connection_string not in text
    for secret in (access_key, api_key, insights):
        leaked = sorted(s for s in substrings(secret) if s in text)
        assert leaked == [], f"health leaks part of a secret: {leaked}"


async def test_a_broken_environment_does_not_stop_indexing(clean_env: pytest.MonkeyPatch) -> None:
    for name, value in {
        "ACS_RESOURCE_ID": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Communication/acs",
        "AZURE_COMMUNICATION_CONNECTION_STRING": "accesskey=only",
        "MEDIA_AUDIO_FORMAT": "opus",
        "CALLER_DENY_LIST": "+4930*, 0301234567",
        "AOAI_INBOUND_PROFILE": "nope",
        "AOAI_PROFILES_DIR": "/does/not/exist",
        "OUTBOUND_ALLOW_LIST": "+8150",  # a prefix needs its '*'
        "OUTBOUND_CALLS_PER_MINUTE": "0",
    }.items():
        clean_env.setenv(name, value)
    health = body_of(await invoke("health", method="GET"))
    invalid = {name for name, entry in health["settings"].items() if not entry["valid"]}
    assert invalid >= {
        "ACS_RESOURCE_ID",
        "AZURE_COMMUNICATION_CONNECTION_STRING",
        "MEDIA_AUDIO_FORMAT",
        "CALLER_DENY_LIST",
        "AOAI_INBOUND_PROFILE",
        "AOAI_PROFILES_DIR",
        "OUTBOUND_ALLOW_LIST",
        "OUTBOUND_CALLS_PER_MINUTE",
    }


def test_routes_methods_and_auth_levels() -> None:
    triggers = {name: f.trigger for name, f in registered_functions().items()}
    summary = {
        name: (t["type"], t["route"], sorted(t["methods"]), t["authLevel"]) for name, t in triggers.items()
    }
    assert summary == {
        "incoming_call": ("httpTrigger", "incoming-call", ["OPTIONS", "POST"], "FUNCTION"),
        "callbacks": ("httpTrigger", "callbacks", ["POST"], "ANONYMOUS"),
        "start_call": ("httpTrigger", "calls", ["POST"], "FUNCTION"),
        "issue_token": ("httpTrigger", "token", ["POST"], "FUNCTION"),  # mints calling identities
        # GET and HEAD only to answer 405 saying what to fix; the signature is the authentication
        "twilio_voice": ("httpTrigger", "twilio/voice", ["GET", "HEAD", "POST"], "ANONYMOUS"),
        "twilio_stream_status": ("httpTrigger", "twilio/stream-status", ["GET", "HEAD", "POST"], "ANONYMOUS"),
        "health": ("httpTrigger", "health", ["GET"], "ANONYMOUS"),
    }
