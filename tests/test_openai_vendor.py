"""OpenAI (api.openai.com) as the realtime vendor, against a fake on 127.0.0.1: URL, headers, session."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from tests.conftest import StartMediaHost
from tests.fake_realtime import FakeRealtime

OPENAI_KEY = "sk-test-openai-0123456789"


def openai_env(model: FakeRealtime, **overrides: str) -> dict[str, str]:
    """The media host's settings with OpenAI instead of Azure OpenAI, at the fake."""
    return {
        "AZURE_OPENAI_ENDPOINT": "",
        "AZURE_OPENAI_API_KEY": "",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": f"{model.url}/v1",
        **overrides,
    }


def audit_events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    """Audit events as the telemetry writes them without Application Insights: one JSON log line each."""
    events = []
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("{"):
            event = json.loads(message)
            if event.get("event") == name:
                events.append(event)
    return events


async def test_openai_gets_the_model_in_the_url_a_bearer_key_and_the_ga_session(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    model.api_key, model.bearer = None, OPENAI_KEY
    host = await start_media_host(**openai_env(model, OPENAI_REALTIME_MODEL="gpt-realtime-2.1"))
    leg = await host.call()
    socket = await model.socket()
    update = await socket.wait_for("session.update")

    assert (socket.path, socket.query) == ("/v1/realtime", {"model": "gpt-realtime-2.1"})
    headers = {name.lower(): value for name, value in socket.headers.items()}
    assert headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert "api-key" not in headers
    assert "openai-beta" not in headers  # GA: the beta header would ask for the preview protocol

    session = update["session"]
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    audio = session["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcm", "rate": 24_000}
    assert audio["output"]["format"] == {"type": "audio/pcm", "rate": 24_000}  # rate is required by GA
    assert audio["output"]["voice"] == "sage"
    assert audio["input"]["turn_detection"]["type"] == "server_vad"
    beta_fields = {"modalities", "voice", "input_audio_format", "output_audio_format", "turn_detection"}
    assert not beta_fields & set(session)

    (started,) = audit_events(caplog, "ModelSessionStarted")
    assert (started["deployment"], started["auth_mode"]) == ("gpt-realtime-2.1", "openai-key")
    assert OPENAI_KEY not in caplog.text
    await leg.close()


async def test_openai_refusing_the_key_is_retried_then_the_call_is_hung_up(
    start_media_host: StartMediaHost, model: FakeRealtime, caplog: pytest.LogCaptureFixture
) -> None:
    model.api_key, model.bearer = None, "sk-the-key-openai-expects"
    host = await start_media_host(**openai_env(model, MODEL_CONNECT_ATTEMPTS="2"))
    leg = await host.call()
    await leg.wait_closed()

    assert model.upgrade_attempts == 2
    assert "HTTP 401 on upgrade (check the role assignment or key)" in caplog.text
    assert OPENAI_KEY not in caplog.text
