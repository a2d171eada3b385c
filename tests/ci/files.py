"""The repository's CI files as the tests read them: YAML (with `on:` kept a string), JSONC, the tools
in .venv/bin and the WebAssembly actionlint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
DEVCONTAINER = ROOT / ".devcontainer" / "devcontainer.json"
ACTIONLINT = ROOT / "tests" / "ci" / "actionlint"
BIN = Path(sys.executable).parent  # .venv/bin: shellcheck, hadolint and check-jsonschema are wheels there


def load_yaml(path: Path) -> Any:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and True in data:  # YAML 1.1 reads a bare `on` as true; GitHub, as `on`
        data["on"] = data.pop(True)
    return data


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def strip_jsonc(text: str) -> str:
    """JSON with comments (devcontainer.json: `allowComments`, no trailing commas) to JSON. Comments
    become whitespace, so json's error positions still point into the original text."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            end = i + 1
            while end < n and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            out.append(text[i : end + 1])
            i = end + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError(f"unterminated /* comment at offset {i}")
            out.append(re.sub(r"[^\n]", " ", text[i : end + 2]))
            i = end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def loads_jsonc(text: str) -> Any:
    return json.loads(strip_jsonc(text))


def load_jsonc(path: Path) -> Any:
    return loads_jsonc(path.read_text(encoding="utf-8"))


def venv_tool(name: str) -> str:
    tool = BIN / name
    assert tool.is_file(), f"{name} is not in {BIN}: `make setup` installs it (requirements-dev.txt)"
    return str(tool)


def actionlint(*files: Path) -> list[dict[str, Any]]:
    """actionlint's findings for these workflow files (tests/ci/actionlint/lint.cjs)."""
    assert (ACTIONLINT / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm").is_file(), (
        "actionlint is not installed: `make test` installs it (npm ci in tests/ci/actionlint)"
    )
    node = shutil.which("node")
    assert node, "node (20+) is not on PATH"
    result = subprocess.run(
        [node, str(ACTIONLINT / "lint.cjs"), *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stderr
    findings: list[dict[str, Any]] = json.loads(result.stdout)
    return findings


def check_jsonschema(schema: str, *files: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema against one of the schemas it ships (`vendor.github-workflows`, ...)."""
    return subprocess.run(
        [venv_tool("check-jsonschema"), "--builtin-schema", schema, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
