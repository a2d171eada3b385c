"""Settings are validated once, with every problem named."""

from __future__ import annotations

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


def test_defaults_for_production() -> None:
    s = MediaSettings.from_env(BASE)
    assert s.model.realtime_url() == "wss://contoso.openai.azure.com/openai/v1/realtime?model=gpt-realtime"
    assert s.model.api_key is None  # Entra ID
    assert s.acs.endpoint == "https://contoso.communication.azure.com"
    assert s.acs.jwt_issuer == "https://acscallautomation.communication.azure.com"
    assert (s.soxr_quality, s.model.voice, s.model.instructions) == ("HQ", "sage", DEFAULT_INSTRUCTIONS)
    assert s.transfer_target is None


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
    assert MediaSettings.from_env(env).acs.connection_string is not None
    with pytest.raises(
        SettingsError,
        match=re.escape("ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING"),
    ):
        MediaSettings.from_env({k: v for k, v in env.items() if k != "AZURE_COMMUNICATION_CONNECTION_STRING"})
