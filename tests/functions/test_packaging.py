"""What ships with the function app: host.json, the settings sample, pinned requirements, .funcignore."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from common.profiles import available_profiles
from functions.settings import SETTING_NAMES

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    return json.loads((ROOT / name).read_text(encoding="utf-8"))


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(3)
    return found


def test_host_json() -> None:
    host = load("host.json")
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    assert host["extensions"]["http"]["routePrefix"] == "api"
    assert host["logging"]["logLevel"] == {
        "default": "Information",
        "Host.Results": "Error",
        "Function": "Information",
        "Host.Aggregator": "Trace",
    }
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    assert sampling["isEnabled"] is True
    assert set(sampling["excludedTypes"].split(";")) == {"Request", "Exception", "Event"}
    assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", host["functionTimeout"])


def test_settings_sample_lists_every_setting_of_both_planes() -> None:
    sample = load("local.settings.sample.json")
    assert sample["IsEncrypted"] is False
    values: dict[str, str] = sample["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"

    media_source = (ROOT / "media_host" / "settings.py").read_text(encoding="utf-8")
    media_names = set(re.findall(r'\br\.\w+\(\s*"([A-Z][A-Z0-9_]+)"', media_source))
    assert "ACS_RESOURCE_ID" in media_names  # the pattern still finds the media host's settings
    for name in media_names | set(SETTING_NAMES):
        assert name in values, f"{name} is missing from local.settings.sample.json"
        assert values.get(f"//{name}"), f"{name} has no description key //{name}"
    secret_like = [
        k
        for k, v in values.items()
        if not k.startswith("//") and re.search(r"(?i)accesskey=\w|key=\w{20}", v)
    ]
    assert secret_like == []


def test_requirements_are_pinned_like_the_media_host() -> None:
    functions = pins(ROOT / "requirements.txt")
    media = pins(ROOT / "media_host" / "requirements.txt")
    assert functions["azure-functions"] == "1.26.0"
    for package in ("azure-communication-callautomation", "azure-core", "azure-identity", "aiohttp", "pyjwt"):
        assert functions[package] == media[package], package
    lines = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all("==" in line for line in lines)


def test_funcignore_keeps_other_parts_out_of_the_package() -> None:
    entries = set((ROOT / ".funcignore").read_text(encoding="utf-8").split())
    assert entries >= {
        "media_host/",
        "infra/",
        "tests/",
        "bench/",
        "emulators/",
        ".venv",
        ".git*",
        "out/",
        "*.md",
        "local.settings.json",
        ".azure/",
    }
    assert not entries & {"prompts/", "common/", "functions/"}  # needed at run time


def test_a_profile_ships() -> None:
    assert "restaurant" in available_profiles(ROOT / "prompts")
    prompt = (ROOT / "prompts" / "restaurant.txt").read_text(encoding="utf-8")
    assert "end_call" in prompt
