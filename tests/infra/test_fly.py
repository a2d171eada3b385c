"""fly.toml without flyctl: seed A's always-on settings, a kill timeout that covers the drain, and the
settings it and the README's `fly secrets set` give the all-in-one image are a whole configuration."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from all_in_one.gateway import create_gateway
from all_in_one.settings import AllInOneSettings
from common.settings_reader import SettingsError
from media_host import workers
from tests.infra.bicep import ROOT
from tests.infra.test_all_in_one import DOCKERFILE, FUNCTION_KEY, IGNOREFILE, PUBLIC_URLS, TWILIO
from tests.infra.test_dockerfile import SECRET_NAME, env_of, stages

FLY_MAX_KILL_TIMEOUT = 300  # seconds (Fly.io docs, reference/configuration: kill_timeout)
# After the drain deadline: hang up the calls left (up to 5 s for their sockets), close the clients,
# flush telemetry. Fly forces the stop at kill_timeout, so these must fit in what the drain leaves.
AFTER_DRAIN_SECONDS = 15
SECRET_VALUES = {**TWILIO, "OPENAI_API_KEY": "sk-test", "FUNCTION_KEY": FUNCTION_KEY}  # the README's


def fly() -> dict[str, Any]:
    return tomllib.loads((ROOT / "fly.toml").read_text(encoding="utf-8"))


def fly_env() -> dict[str, str]:
    env = fly()["env"]
    assert all(isinstance(value, str) for value in env.values()), "[env] values are strings"
    return dict(env)


def readme_secrets() -> set[str]:
    readme = re.sub(r"\\\n\s*", " ", (ROOT / "README.md").read_text(encoding="utf-8"))  # continued lines
    commands = re.findall(r"^(?:fly|flyctl) secrets set (.+)$", readme, flags=re.MULTILINE)
    assert commands, "README.md has no `fly secrets set`"
    return {name for command in commands for name in re.findall(r"\b([A-Z][A-Z0-9_]+)=", command)}


def test_always_on_as_in_seed_a() -> None:
    service = fly()["http_service"]
    assert service["auto_stop_machines"] == "off"  # the proxy never stops the Machine
    assert service["auto_start_machines"] is True
    assert service["min_machines_running"] == 1
    assert service["force_https"] is True  # Twilio's webhooks and streams are https/wss only


def test_the_kill_timeout_covers_the_drain() -> None:
    config = fly()
    assert config["kill_signal"] == "SIGTERM"  # the process drains on it (Fly's default is SIGINT)
    assert isinstance(config["kill_timeout"], int) and config["kill_timeout"] <= FLY_MAX_KILL_TIMEOUT
    drain = float(fly_env()["MEDIA_DRAIN_SECONDS"])
    assert config["kill_timeout"] >= drain + AFTER_DRAIN_SECONDS
    assert AFTER_DRAIN_SECONDS > workers.AFTER_DRAIN_SECONDS  # the manager of several workers is done first


def test_the_service_port_is_the_images_port() -> None:
    image_env = env_of(stages(DOCKERFILE)[-1])
    exposed = [i.arguments for i in stages(DOCKERFILE)[-1] if i.keyword == "EXPOSE"]
    port = fly()["http_service"]["internal_port"]
    assert str(port) == fly_env()["PORT"] == image_env["PORT"]
    assert exposed == [str(port)]


def test_fly_builds_the_all_in_one_image_with_its_own_ignore_file() -> None:
    build = fly()["build"]
    assert ROOT / build["dockerfile"] == DOCKERFILE
    assert ROOT / build["ignorefile"] == IGNOREFILE


def test_a_deploy_moves_traffic_to_a_healthy_machine_before_the_old_one_drains() -> None:
    config = fly()
    assert config["deploy"]["strategy"] == "bluegreen"
    (check,) = config["http_service"]["checks"]  # bluegreen needs one
    assert (check["method"], check["path"]) == ("GET", "/healthz")  # alive, also while draining


def test_websocket_calls_are_counted_as_connections_with_room_above_the_call_cap() -> None:
    concurrency = fly()["http_service"]["concurrency"]
    assert concurrency["type"] == "connections"
    # MEDIA_WORKERS unset: one worker per CPU of the Machine, each with its own cap.
    calls = fly()["vm"][0]["cpus"] * int(fly_env()["MAX_CONCURRENT_CALLS"])
    assert "MEDIA_WORKERS" not in fly_env()
    # Past the cap the app answers "at capacity" itself, and live calls' callbacks still get in.
    assert calls < concurrency["soft_limit"] <= concurrency["hard_limit"]


def test_env_holds_no_secret_and_the_readme_sets_the_rest() -> None:
    assert not [name for name in fly_env() if SECRET_NAME.search(name)]
    assert readme_secrets() == set(SECRET_VALUES)


def test_fly_toml_and_the_secrets_are_a_whole_twilio_and_openai_configuration() -> None:
    env = {**fly_env(), **SECRET_VALUES}
    with pytest.raises(SettingsError) as missing:  # the app's own URLs are the user's to fill in
        AllInOneSettings.from_env(env)
    for name in PUBLIC_URLS:
        assert f"{name} is required" in str(missing.value)

    settings = AllInOneSettings.from_env({**env, **PUBLIC_URLS})
    assert settings.media.acs is None and settings.media.twilio is not None
    assert settings.media.model.vendor == "openai"
    assert settings.media.port == fly()["http_service"]["internal_port"]
    gateway = create_gateway(settings.media, keys=settings.function_keys)
    paths = {route.resource.canonical for route in gateway.router.routes() if route.resource}
    assert {"/healthz", "/readyz", "/api/twilio/voice", "/api/twilio/stream-status", "/ws/twilio"} <= paths
