"""Settings are validated once, with every problem named."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from common.settings_reader import SettingsError
from media_host.settings import DEFAULT_INSTRUCTIONS, MediaSettings

BASE = {
    "ACS_RESOURCE_ID": "5e7a2b1c-0d4f-4a3e-9b8c-1f2e3d4c5b6a",
    "ACS_ENDPOINT": "https://contoso.communication.azure.com/",
    "AZURE_OPENAI_ENDPOINT": "https://contoso.openai.azure.com/",
}


AZURE_ONLY = {k: v for k, v in BASE.items() if k != "AZURE_OPENAI_ENDPOINT"}
OPENAI_KEY = "sk-test-0123456789abcdef"


def test_defaults_for_production() -> None:
    s = MediaSettings.from_env(BASE)
    assert s.model.vendor == "azure"
    assert s.model.realtime_url() == "wss://contoso.openai.azure.com/openai/v1/realtime?model=gpt-realtime"
    assert s.model.api_key is None  # Entra ID
    assert s.acs is not None and s.twilio is None  # a provider's settings make it served
    assert s.acs.endpoint == "https://contoso.communication.azure.com"
    assert s.acs.jwt_issuer == "https://acscallautomation.communication.azure.com"
    assert (s.soxr_quality, s.model.voice, s.model.instructions) == ("HQ", "sage", DEFAULT_INSTRUCTIONS)
    assert s.transfer_target is None
    assert s.workers == len(os.sched_getaffinity(0))  # one process per CPU it may use


@pytest.mark.parametrize(
    ("value", "problem"), [("0", "out of range [1, 256]"), ("1.5", "not a whole number")]
)
def test_media_workers_is_a_whole_number_of_processes(value: str, problem: str) -> None:
    assert MediaSettings.from_env({**BASE, "MEDIA_WORKERS": "2.0"}).workers == 2
    with pytest.raises(SettingsError, match=re.escape(f"MEDIA_WORKERS={value} is {problem}")):
        MediaSettings.from_env({**BASE, "MEDIA_WORKERS": value})


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("wss://x.openai.azure.com", "wss://x.openai.azure.com/openai/v1/realtime?model=gpt-realtime"),
        ("http://127.0.0.1:8765", "ws://127.0.0.1:8765/openai/v1/realtime?model=gpt-realtime"),
        ("ws://localhost:9000/", "ws://localhost:9000/openai/v1/realtime?model=gpt-realtime"),
    ],
)
def test_model_endpoint_schemes(endpoint: str, url: str) -> None:
    assert MediaSettings.from_env({**BASE, "AZURE_OPENAI_ENDPOINT": endpoint}).model.realtime_url() == url


def test_openai_api_key_selects_openai() -> None:
    s = MediaSettings.from_env({**AZURE_ONLY, "OPENAI_API_KEY": OPENAI_KEY})
    assert (s.model.vendor, s.model.deployment, s.model.api_key) == ("openai", "gpt-realtime", OPENAI_KEY)
    assert s.model.realtime_url() == "wss://api.openai.com/v1/realtime?model=gpt-realtime"


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("https://api.openai.com/v1/", "wss://api.openai.com/v1/realtime?model=gpt-realtime-2.1"),
        ("http://127.0.0.1:8765/v1", "ws://127.0.0.1:8765/v1/realtime?model=gpt-realtime-2.1"),
        (
            "wss://gateway.example/openai/v1",
            "wss://gateway.example/openai/v1/realtime?model=gpt-realtime-2.1",
        ),
    ],
)
def test_openai_base_url_and_model(base_url: str, url: str) -> None:
    env = {
        **AZURE_ONLY,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": base_url,
        "OPENAI_REALTIME_MODEL": "gpt-realtime-2.1",
        "AZURE_OPENAI_DEPLOYMENT": "ignored without AZURE_OPENAI_ENDPOINT",
    }
    assert MediaSettings.from_env(env).model.realtime_url() == url


def test_both_vendors_configured_is_refused_naming_both() -> None:
    with pytest.raises(SettingsError) as caught:
        MediaSettings.from_env({**BASE, "OPENAI_API_KEY": OPENAI_KEY, "AZURE_OPENAI_API_KEY": "azure-secret"})
    message = str(caught.value)
    assert (
        "AZURE_OPENAI_ENDPOINT (Azure OpenAI) and OPENAI_API_KEY (OpenAI) are both set: "
        "configure one realtime model vendor, not both"
    ) in message
    assert message.count("\n  - ") == 1  # one clear line, not one per vendor
    assert OPENAI_KEY not in message and "azure-secret" not in message


def test_no_vendor_is_refused_naming_both_options() -> None:
    with pytest.raises(SettingsError) as caught:
        MediaSettings.from_env({**AZURE_ONLY, "OPENAI_BASE_URL": "http://127.0.0.1:8765/v1"})
    assert "AZURE_OPENAI_ENDPOINT is required for Azure OpenAI, or OPENAI_API_KEY for OpenAI" in str(
        caught.value
    )


def test_malformed_openai_base_url_is_named_without_its_value() -> None:
    env = {**AZURE_ONLY, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "api.openai.com/v1"}
    with pytest.raises(SettingsError) as caught:
        MediaSettings.from_env(env)
    assert "OPENAI_BASE_URL must be a URL starting with https://" in str(caught.value)
    assert "api.openai.com" not in str(caught.value)


def test_every_problem_is_named_at_once() -> None:
    env = {
        "AZURE_OPENAI_ENDPOINT": "contoso.openai.azure.com",
        "AZURE_COMMUNICATION_CONNECTION_STRING": "accesskey=abc",
        "MEDIA_WS_SOXR_QUALITY": "ultra",
        "TRANSFER_TARGET": "555-0100",
        "MAX_CALL_SECONDS": "-5",
    }
    with pytest.raises(SettingsError) as caught:
        MediaSettings.from_env(env)
    message = str(caught.value)
    for expected in (
        "ACS_RESOURCE_ID is required",
        "AZURE_OPENAI_ENDPOINT must be a URL starting with https://",
        "AZURE_COMMUNICATION_CONNECTION_STRING is malformed",
        "MEDIA_WS_SOXR_QUALITY='ultra' must be one of QQ, LQ, MQ, HQ, VHQ",
        "TRANSFER_TARGET='555-0100' must be an E.164 number",
        "MAX_CALL_SECONDS=-5 is out of range",
    ):
        assert expected in message
    assert "abc" not in message  # a key never appears in an error
    assert "contoso.openai.azure.com" not in message  # nor a value pasted into the wrong setting


def test_acs_resource_id_must_be_the_immutable_id() -> None:
    arm_path = (
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Communication/communicationServices/acs"
    )
    with pytest.raises(SettingsError, match="ACS_RESOURCE_ID must be the resource's immutable id"):
        MediaSettings.from_env({**BASE, "ACS_RESOURCE_ID": arm_path})


def test_instructions_file(tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You answer for Contoso Bistro.\n", encoding="utf-8")
    s = MediaSettings.from_env(
        {**BASE, "AOAI_INSTRUCTIONS": "ignored", "AOAI_INSTRUCTIONS_FILE": str(prompt)}
    )
    assert s.model.instructions == "You answer for Contoso Bistro."
    with pytest.raises(SettingsError, match=re.escape("AOAI_INSTRUCTIONS_FILE='/nope.txt' cannot be read")):
        MediaSettings.from_env({**BASE, "AOAI_INSTRUCTIONS_FILE": "/nope.txt"})


def test_connection_string_alone_is_enough_for_call_control() -> None:
    env = {k: v for k, v in BASE.items() if k != "ACS_ENDPOINT"}
    env["AZURE_COMMUNICATION_CONNECTION_STRING"] = (
        "endpoint=https://contoso.communication.azure.com/;accesskey=a2V5"
    )
    acs = MediaSettings.from_env(env).acs
    assert acs is not None and acs.connection_string is not None
    with pytest.raises(
        SettingsError,
        match=re.escape("ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING"),
    ):
        MediaSettings.from_env({k: v for k, v in env.items() if k != "AZURE_COMMUNICATION_CONNECTION_STRING"})


TWILIO_ONLY = {
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "MEDIA_HOST_URL": "https://voice.example",
    "OPENAI_API_KEY": "sk-test",
}


def test_a_twilio_only_host_needs_no_acs_setting() -> None:
    s = MediaSettings.from_env(TWILIO_ONLY)
    assert s.acs is None and s.twilio is not None
    assert s.twilio.stream_url == "wss://voice.example/ws/twilio"  # what Twilio dials, and signs


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"TWILIO_AUTH_TOKEN": "not-the-token"}, "TWILIO_AUTH_TOKEN"),  # checked as the control plane does
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_ACCOUNT_SID"),
        ({"TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),  # half a Twilio configuration
    ],
)
def test_twilio_credentials_are_checked_without_quoting_them(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as refused:
        MediaSettings.from_env({**TWILIO_ONLY, **overrides})
    assert named in str(refused.value) and "not-the-token" not in str(refused.value)
