"""The postdeploy hook: run for real (POSIX sh) against a fake `az` on PATH and a local /api/health,
and the PowerShell twin checked for the same Azure CLI calls (pwsh cannot be installed here)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.infra.bicep import INFRA

HOOK_SH = INFRA / "hooks" / "postdeploy.sh"
HOOK_PS1 = INFRA / "hooks" / "postdeploy.ps1"
HINT = "azd hooks run postdeploy"
KEY = "s3cr3tKEY+with/base64=="  # the characters a query string would mangle
KEY_IN_URL = "s3cr3tKEY%2Bwith%2Fbase64%3D%3D"

FAKE_AZ = """#!{python}
# A stand-in for the Azure CLI: records its arguments, answers like az would.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
fail = os.environ.get("FAKE_AZ_FAIL", "")
if args[:3] == ["functionapp", "keys", "list"]:
    if fail == "keys":
        print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
        sys.exit(1)
    print(os.environ.get("FAKE_AZ_KEY", ""))
    sys.exit(0)
if args[:4] == ["eventgrid", "system-topic", "event-subscription", "create"]:
    endpoint = args[args.index("--endpoint") + 1]
    if fail == "create":
        print("ERROR: (URL validation) Webhook validation handshake failed for " + endpoint, file=sys.stderr)
        sys.exit(1)
    with open(os.environ["FAKE_AZ_SUBSCRIPTIONS"], "a") as state:  # create-or-update: a PUT
        state.write(args[args.index("--name") + 1] + " " + endpoint + "\\n")
    if args[args.index("--output") + 1] != "none":
        print(json.dumps({{"provisioningState": "Succeeded", "destination": {{"endpointUrl": endpoint}}}}))
    sys.exit(0)
print("fake az: unexpected command " + " ".join(args), file=sys.stderr)
sys.exit(2)
"""


@dataclass
class Health:
    """The deployed function's GET /api/health, as the hook sees it."""

    not_ready: int = 0  # answer 503 this many times first
    body: dict[str, Any] = field(default_factory=lambda: {"status": "ok", "settings": {}})
    hits: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.hits <= self.not_ready:
            return web.json_response({"error": "starting"}, status=503)
        return web.json_response(self.body)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    calls: list[list[str]]

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def call(self, *command: str) -> list[str]:
        (found,) = [c for c in self.calls if c[: len(command)] == list(command)]
        return found


def options(argv: list[str]) -> dict[str, str]:
    found = {}
    for i, arg in enumerate(argv):
        if arg.startswith("--"):
            found[arg] = argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else ""
    return found


class Hook:
    def __init__(self, tmp: Path, server: TestServer) -> None:
        self.tmp = tmp
        self.base_url = str(server.make_url("")).rstrip("/")
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        az = bin_dir / "az"
        az.write_text(FAKE_AZ.format(python=sys.executable), encoding="utf-8")
        az.chmod(0o755)
        self.log = tmp / "az.log"
        self.subscriptions = tmp / "subscriptions"
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_AZ_LOG": str(self.log),
            "FAKE_AZ_SUBSCRIPTIONS": str(self.subscriptions),
            "FAKE_AZ_KEY": KEY,
            "AZURE_RESOURCE_GROUP": "rg-test",
            "AZURE_FUNCTION_APP_NAME": "func-test",
            "FUNCTION_BASE_URL": self.base_url + "/",
            "ACS_SYSTEM_TOPIC_NAME": "egst-acs-test",
            "POSTDEPLOY_HEALTH_ATTEMPTS": "5",
            "POSTDEPLOY_HEALTH_INTERVAL": "0",
        }

    async def run(self, **env: str) -> Run:
        process = await asyncio.create_subprocess_exec(
            "sh", str(HOOK_SH), env={**self.env, **env}, cwd=self.tmp,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
        calls = [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []
        self.log.unlink(missing_ok=True)
        assert process.returncode is not None
        return Run(process.returncode, stdout.decode(), stderr.decode(), calls)


@pytest.fixture
def health() -> Health:
    return Health()


@pytest.fixture
async def hook(
    tmp_path: Path,
    health: Health,
    aiohttp_server: Callable[[web.Application], Awaitable[TestServer]],
) -> Hook:
    assert shutil.which("curl"), "the hook needs curl (Debian package curl)"
    app = web.Application()
    app.router.add_get("/api/health", health.handle)
    return Hook(tmp_path, await aiohttp_server(app))


def assert_key_hidden(run: Run) -> None:
    for secret in (KEY, KEY_IN_URL, "s3cr3t"):
        assert secret not in run.output, "the function key was printed"


# --- static checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_hook_parses(shell: str) -> None:
    subprocess.run([shell, "-n", str(HOOK_SH)], check=True, capture_output=True)


def test_shellcheck_is_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: `make test` installs it (Debian package shellcheck)"
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(HOOK_SH)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the hook against a fake az ---------------------------------------------------------------


async def test_subscribes_the_incoming_call_webhook_without_showing_the_key(
    hook: Hook, health: Health
) -> None:
    run = await hook.run()
    assert run.code == 0, run.output
    assert [c[:4] for c in run.calls] == [
        ["functionapp", "keys", "list", "--resource-group"],
        ["eventgrid", "system-topic", "event-subscription", "create"],
    ]
    keys = options(run.call("functionapp", "keys", "list"))
    assert keys == {
        "--resource-group": "rg-test",
        "--name": "func-test",
        "--query": "functionKeys.default",
        "--output": "tsv",
    }
    create = options(run.call("eventgrid", "system-topic", "event-subscription", "create"))
    assert create["--resource-group"] == "rg-test"
    assert create["--system-topic-name"] == "egst-acs-test"
    assert create["--name"] == "incomingcall"
    assert create["--endpoint-type"] == "webhook"
    assert create["--endpoint"] == f"{hook.base_url}/api/incoming-call?code={KEY_IN_URL}"
    assert create["--included-event-types"] == "Microsoft.Communication.IncomingCall"
    assert create["--max-events-per-batch"] == "1"
    assert create["--event-delivery-schema"] == "eventgridschema"
    assert health.hits == 1
    assert "settings ok" in run.stdout
    assert_key_hidden(run)


async def test_running_it_again_updates_the_same_subscription(hook: Hook) -> None:
    first = await hook.run()
    second = await hook.run()
    assert first.code == second.code == 0, second.output
    assert first.calls == second.calls  # the same create-or-update, nothing deleted or added
    assert len(hook.subscriptions.read_text().splitlines()) == 2
    assert len(set(hook.subscriptions.read_text().splitlines())) == 1


async def test_waits_until_the_function_is_live(hook: Hook, health: Health) -> None:
    health.not_ready = 3
    run = await hook.run()
    assert run.code == 0, run.output
    assert health.hits == 4
    assert len(run.calls) == 2


async def test_gives_up_when_the_function_never_comes_up(hook: Hook, health: Health) -> None:
    health.not_ready = 1000
    run = await hook.run(POSTDEPLOY_HEALTH_ATTEMPTS="3")
    assert run.code != 0
    assert health.hits == 3
    assert run.calls == [], "nothing may be subscribed before the function answers"
    assert "/api/health" in run.stderr and "503" in run.stderr
    assert HINT in run.stderr


async def test_warns_when_the_function_reports_bad_settings(hook: Hook, health: Health) -> None:
    health.body = {
        "status": "misconfigured",
        "settings": {"MEDIA_HOST_URL": {"present": True, "valid": False}},
    }
    run = await hook.run()
    assert run.code == 0, run.output
    assert "WARNING" in run.stdout and "/api/health" in run.stdout


async def test_a_failed_key_lookup_stops_with_the_hint(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_FAIL="keys")
    assert run.code != 0
    assert "az login" in run.stderr
    assert HINT in run.stderr
    assert [c[:2] for c in run.calls] == [["functionapp", "keys"]]


async def test_a_missing_key_stops_with_the_hint(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_KEY="")
    assert run.code != 0
    assert "no default function key" in run.stderr
    assert HINT in run.stderr
    assert len(run.calls) == 1


async def test_a_failed_subscription_stops_with_the_hint_and_hides_the_key(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_FAIL="create")
    assert run.code != 0
    assert "handshake failed" in run.stderr  # az's own message is shown ...
    assert "code=***" in run.stderr  # ... with the key blanked out
    assert HINT in run.stderr
    assert_key_hidden(run)


@pytest.mark.parametrize(
    "name", ["AZURE_RESOURCE_GROUP", "AZURE_FUNCTION_APP_NAME", "FUNCTION_BASE_URL", "ACS_SYSTEM_TOPIC_NAME"]
)
async def test_missing_outputs_stop_before_anything(hook: Hook, health: Health, name: str) -> None:
    run = await hook.run(**{name: ""})
    assert run.code != 0
    assert name in run.stderr and HINT in run.stderr
    assert run.calls == [] and health.hits == 0


# --- the PowerShell twin ----------------------------------------------------------------------


def az_commands(text: str, *, continuation: str, invoke: str) -> list[tuple[list[str], dict[str, str]]]:
    """Each `az ...` command of a script: its subcommand words and its options, variables as <var>."""
    joined = re.sub(re.escape(continuation) + r"\n\s*", " ", text)
    commands = []
    for line in joined.splitlines():
        match = re.search(invoke + r"az ([a-z]+ .*--.*)", line)  # a subcommand with options
        if not match or line.lstrip().startswith("#"):
            continue
        command = re.split(r"\s(?:2?>|\|\||;)", match.group(1))[0]  # stop at redirections
        command = re.sub(r"\$\(\$[\w:]+\)|\$\{?[\w:]+\}?", "<var>", command).replace('"', "")
        words = command.split()
        first_option = next(i for i, w in enumerate(words) if w.startswith("--"))
        commands.append((words[:first_option], options(words[first_option:])))
    return commands


def test_powershell_hook_makes_the_same_azure_cli_calls() -> None:
    sh = az_commands(HOOK_SH.read_text(encoding="utf-8"), continuation="\\", invoke=r"(?:^|\s)")
    ps1 = az_commands(HOOK_PS1.read_text(encoding="utf-8"), continuation="`", invoke=r"& ")
    assert [words for words, _ in sh] == [
        ["functionapp", "keys", "list"],
        ["eventgrid", "system-topic", "event-subscription", "create"],
    ]
    assert ps1 == sh


def test_powershell_hook_matches_the_shell_hook_otherwise() -> None:
    sh = HOOK_SH.read_text(encoding="utf-8")
    ps1 = HOOK_PS1.read_text(encoding="utf-8")
    hint = re.search(r'HINT="([^"]+)"', sh)
    assert hint and f"$Hint = '{hint.group(1)}'" in ps1
    for text in ("/api/health", "/api/incoming-call?code=", "functionKeys.default", "incomingcall"):
        assert text in sh and text in ps1, text
    for name in ("POSTDEPLOY_HEALTH_ATTEMPTS", "POSTDEPLOY_HEALTH_INTERVAL", "INCOMING_CALL_SUBSCRIPTION"):
        assert name in sh and f"$env:{name}" in ps1, name
    assert re.search(r"POSTDEPLOY_HEALTH_ATTEMPTS:-60", sh) and "} else { 60 }" in ps1
    assert re.search(r"POSTDEPLOY_HEALTH_INTERVAL:-5", sh) and "} else { 5 }" in ps1
    fail = ps1[ps1.index("function Fail") :]
    assert "exit 1" in fail[: fail.index("\n}")]
    assert "EscapeDataString($script:Key)" in ps1


def test_powershell_hook_never_prints_the_key() -> None:
    for number, line in enumerate(HOOK_PS1.read_text(encoding="utf-8").splitlines(), start=1):
        prints = re.search(r"\b(Say|Write-\w+|WriteLine|Fail)\b", line)
        if prints and re.search(r"\$(script:)?Key", line):
            assert "Hide-Key" in line, f"postdeploy.ps1:{number} may print the key: {line.strip()}"


def test_powershell_hook_is_balanced() -> None:
    # A cheap syntax check without pwsh: brackets balance outside strings and comments.
    depth = {"{": 0, "(": 0, "[": 0}
    closing = {"}": "{", ")": "(", "]": "["}
    for number, line in enumerate(HOOK_PS1.read_text(encoding="utf-8").splitlines(), start=1):
        quote = ""
        i = 0
        while i < len(line):
            ch = line[i]
            if quote:
                if ch == "`" and quote == '"':
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch == "#":
                break
            elif ch in depth:
                depth[ch] += 1
            elif ch in closing:
                depth[closing[ch]] -= 1
                assert depth[closing[ch]] >= 0, f"postdeploy.ps1:{number}: unmatched {ch}"
            i += 1
        assert not quote, f"postdeploy.ps1:{number}: unterminated string"
    assert depth == {"{": 0, "(": 0, "[": 0}
