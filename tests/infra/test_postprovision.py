"""The postprovision hook: run for real (POSIX sh) with a fake `azd env get-values` on PATH, and the
.env it writes read back the way `make up` reads it (local_stack.env_file). The PowerShell twin is
checked for the same names, markers and filters (pwsh cannot be installed here)."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]

from local_stack.env_file import read_env_file
from tests.infra.bicep import INFRA, ROOT, main

HOOK_SH = INFRA / "hooks" / "postprovision.sh"
HOOK_PS1 = INFRA / "hooks" / "postprovision.ps1"

SECRETS = {
    "AZURE_OPENAI_API_KEY": "0123456789abcdef0123456789abcdef",
    "AZURE_COMMUNICATION_CONNECTION_STRING": "endpoint=https://acs-x.communication.azure.com/;accesskey=c2VjcmV0LWtleQ==",
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=11111111-2222-3333-4444-555555555555;IngestionEndpoint=https://x/",
    "TWILIO_AUTH_TOKEN": "feedfacefeedfacefeedfacefeedface",
    "STORAGE_SAS": "sv=2024-01-01&sig=abcdefABCDEF0123456789abcdefABCDEF0123%3D",
}
OUTPUTS = {
    "AZURE_ENV_NAME": "dev",
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-0000000000aa",
    "AZURE_OPENAI_ENDPOINT": "https://oai-abc123.openai.azure.com/",
    "AZURE_OPENAI_DEPLOYMENT": "gpt-realtime",
    "ACS_RESOURCE_ID": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    "ACS_ENDPOINT": "https://acs-abc123.communication.azure.com",
    "AZURE_RESOURCE_GROUP": "rg-dev",
    "FUNCTION_BASE_URL": "https://func-abc123.azurewebsites.net",
    "MEDIA_HOST_URL": "wss://ca-media-abc123.kindwave-1234.eastus2.azurecontainerapps.io",
    "APPLICATIONINSIGHTS_NAME": "appi-abc123",
}
FAKE_AZD = """#!{python}
# A stand-in for `azd env get-values`: KEY="value" lines, as azd prints them.
import json, os, sys
expected = ["env", "get-values"] + (["--environment", os.environ["AZURE_ENV_NAME"]] if "AZURE_ENV_NAME" in os.environ else [])
if sys.argv[1:] != expected:
    print("fake azd: unexpected " + " ".join(sys.argv[1:]), file=sys.stderr)
    sys.exit(2)
if os.environ.get("FAKE_AZD_FAIL"):
    print("ERROR: no project exists; to create a new project, run `azd init`", file=sys.stderr)
    sys.exit(1)
for name, value in json.loads(os.environ["FAKE_AZD_VALUES"]).items():
    print(name + '="' + value + '"')
"""
KEY_LIKE_NAME = re.compile(r"(?i)key|secret|password|token|connection_string|sas")
KEY_LIKE_VALUE = re.compile(r"(?i)accountkey|accesskey|instrumentationkey|sig=|key=|[A-Za-z0-9+/]{32,}")


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    env_file: Path

    @property
    def text(self) -> str:
        return self.env_file.read_text(encoding="utf-8") if self.env_file.exists() else ""


class Hook:
    def __init__(self, tmp: Path) -> None:
        self.bin = tmp / "bin"
        self.bin.mkdir()
        azd = self.bin / "azd"
        azd.write_text(FAKE_AZD.format(python=sys.executable), encoding="utf-8")
        azd.chmod(0o755)
        self.env_file = tmp / "repo" / ".env"
        self.env_file.parent.mkdir()
        self.values = {**OUTPUTS, **SECRETS}

    def run(self, *, azd: bool = True, **env: str) -> Run:
        import json

        # A PATH with sh's tools but without any real azd: only the fake one, when wanted.
        path = ([str(self.bin)] if azd else []) + ["/usr/bin", "/bin"]
        result = subprocess.run(
            ["sh", str(HOOK_SH)],
            env={
                "PATH": ":".join(path),
                "FAKE_AZD_VALUES": json.dumps(self.values),
                "POSTPROVISION_ENV_FILE": str(self.env_file),
                **env,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(result.returncode, result.stdout, result.stderr, self.env_file)


@pytest.fixture
def hook(tmp_path: Path) -> Hook:
    return Hook(tmp_path)


def settings(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def assert_no_secret(run: Run) -> None:
    for secret in SECRETS.values():
        assert secret not in run.text and secret not in run.stdout + run.stderr
    for name, value in settings(run.text).items():
        assert not KEY_LIKE_NAME.search(name), f"{name} in .env"
        assert not KEY_LIKE_VALUE.search(value), f"{name}={value} in .env looks like a key"
    for line in run.text.splitlines():
        assert not KEY_LIKE_VALUE.search(line), f"key-like: {line}"


# --- the hook against a fake azd ------------------------------------------------------------------


def test_writes_the_deployed_endpoints_and_no_key(hook: Hook) -> None:
    run = hook.run(AZURE_ENV_NAME="dev")  # as azd runs it: the environment being provisioned, by name
    assert run.code == 0, run.stdout + run.stderr
    assert settings(run.text) == {
        "AZURE_OPENAI_ENDPOINT": OUTPUTS["AZURE_OPENAI_ENDPOINT"],
        "AZURE_OPENAI_DEPLOYMENT": OUTPUTS["AZURE_OPENAI_DEPLOYMENT"],
        "ACS_RESOURCE_ID": OUTPUTS["ACS_RESOURCE_ID"],
    }
    # ACS_ENDPOINT would switch `make up` from the emulator to the real ACS, which needs a tunnel.
    assert f"# ACS_ENDPOINT={OUTPUTS['ACS_ENDPOINT']}" in run.text.splitlines()
    for name in ("FUNCTION_BASE_URL", "MEDIA_HOST_URL", "AZURE_RESOURCE_GROUP", "APPLICATIONINSIGHTS_NAME"):
        assert OUTPUTS[name] in run.text, name
    assert_no_secret(run)
    assert "AZURE_OPENAI_ENDPOINT AZURE_OPENAI_DEPLOYMENT ACS_RESOURCE_ID" in run.stdout


def test_make_up_reads_it(hook: Hook) -> None:
    # The same reader `make up` uses (python-dotenv), so every line parses and no comment leaks a value.
    run = hook.run()
    assert read_env_file(run.env_file) == {
        "AZURE_OPENAI_ENDPOINT": OUTPUTS["AZURE_OPENAI_ENDPOINT"],
        "AZURE_OPENAI_DEPLOYMENT": OUTPUTS["AZURE_OPENAI_DEPLOYMENT"],
        "ACS_RESOURCE_ID": OUTPUTS["ACS_RESOURCE_ID"],
    }


def test_only_its_block_is_its_own(hook: Hook) -> None:
    mine = "# my settings\nPORT=8001\nAOAI_VOICE=marin\n"
    hook.env_file.write_text(mine, encoding="utf-8")
    first = hook.run()
    assert first.code == 0, first.stderr
    assert first.text.startswith(mine)
    hook.env_file.write_text(first.text + "TRANSFER_TARGET=+14255550199\n", encoding="utf-8")
    hook.values["AZURE_OPENAI_DEPLOYMENT"] = "gpt-realtime-1-5"
    second = hook.run()
    assert second.code == 0, second.stderr
    lines = second.text.splitlines()
    assert lines[:3] == mine.splitlines() and lines[-1] == "TRANSFER_TARGET=+14255550199"  # replaced in place
    assert settings(second.text)["AZURE_OPENAI_DEPLOYMENT"] == "gpt-realtime-1-5"
    assert second.text.count("# >>> azd") == second.text.count("# <<< azd") == 1
    assert hook.run().text == second.text, "re-running changes nothing"


def test_a_broken_block_is_left_alone(hook: Hook) -> None:
    first = hook.run()
    broken = first.text.replace("# <<< azd\n", "")
    hook.env_file.write_text(broken, encoding="utf-8")
    run = hook.run()
    assert run.code != 0
    assert "broken azd block" in run.stderr and "azd hooks run postprovision" in run.stderr
    assert hook.env_file.read_text(encoding="utf-8") == broken


def test_warns_about_a_key_outside_its_block(hook: Hook) -> None:
    hook.env_file.write_text(f"AZURE_OPENAI_API_KEY={SECRETS['AZURE_OPENAI_API_KEY']}\n", encoding="utf-8")
    run = hook.run()
    assert run.code == 0
    assert "WARNING" in run.stdout and "AZURE_OPENAI_API_KEY" in run.stdout
    assert SECRETS["AZURE_OPENAI_API_KEY"] not in run.stdout  # named, never shown


@pytest.mark.parametrize(
    "value",
    [
        "https://oai.openai.azure.com/?api-key=abc",
        "endpoint=https://x/;accesskey=abc",
        "https://x.openai.azure.com/ extra",
        "0123456789abcdef0123456789abcdef0123",
    ],
)
def test_a_value_that_is_not_plain_is_left_out(hook: Hook, value: str) -> None:
    hook.values["AZURE_OPENAI_DEPLOYMENT"] = value
    run = hook.run()
    assert run.code == 0
    assert "AZURE_OPENAI_DEPLOYMENT does not look like" in run.stdout
    assert value not in run.text
    assert "AZURE_OPENAI_DEPLOYMENT" not in settings(run.text)


def test_without_azd_it_reads_the_environment_azd_hands_hooks(hook: Hook) -> None:
    run = hook.run(azd=False, **OUTPUTS, **SECRETS)
    assert run.code == 0, run.stderr
    assert settings(run.text)["AZURE_OPENAI_ENDPOINT"] == OUTPUTS["AZURE_OPENAI_ENDPOINT"]
    assert_no_secret(run)


def test_stops_before_provision_and_when_azd_fails(hook: Hook) -> None:
    del hook.values["AZURE_OPENAI_ENDPOINT"]
    run = hook.run()
    assert run.code != 0 and "azd provision" in run.stderr and not run.env_file.exists()
    failed = hook.run(FAKE_AZD_FAIL="1")
    assert failed.code != 0 and "azd env get-values failed" in failed.stderr and not failed.env_file.exists()


def test_none_writes_nothing(hook: Hook) -> None:
    run = hook.run(POSTPROVISION_ENV_FILE="none")
    assert run.code == 0 and not run.env_file.exists()


# --- wiring -----------------------------------------------------------------------------------------


def test_env_is_git_ignored_and_outside_both_packages() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False, capture_output=True
    )
    if ignored.returncode == 128:  # not a git work tree (an unpacked archive): read .gitignore itself
        assert ".env" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    else:
        assert ignored.returncode == 0, ".gitignore must ignore .env"
    assert ".env" in (ROOT / ".funcignore").read_text(encoding="utf-8").split()
    assert (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()[2] == "*"  # allow-list context


def test_every_name_it_reads_is_a_main_bicep_output() -> None:
    outputs = main()["outputs"]
    names = re.findall(
        r"^(?:setting|note(?: \"[^\"]*\")?) ([A-Z_]+)", HOOK_SH.read_text(encoding="utf-8"), re.M
    )
    assert len(names) == 8
    for name in names:
        assert name in outputs, name


def test_azure_yaml_runs_it_after_provision_without_stopping_azd() -> None:
    hook = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8"))["hooks"]["postprovision"]
    assert hook["posix"] == {"shell": "sh", "run": "./infra/hooks/postprovision.sh", "continueOnError": True,
                             "interactive": False}  # fmt: skip
    assert hook["windows"] == {"shell": "pwsh", "run": "./infra/hooks/postprovision.ps1", "continueOnError": True,
                               "interactive": False}  # fmt: skip


# --- the PowerShell twin ------------------------------------------------------------------------------


def test_powershell_hook_writes_the_same_block() -> None:
    sh = HOOK_SH.read_text(encoding="utf-8")
    ps1 = HOOK_PS1.read_text(encoding="utf-8")
    for marker in ("BEGIN", "END"):
        value = re.search(rf"^{marker}='([^']*)'$", sh, re.M)
        assert value, marker
        assert f"${marker.title()} = '{value.group(1)}'" in ps1, marker
    settings_sh = re.findall(r"^setting ([A-Z_]+)( comment)?$", sh, re.M)
    settings_ps1 = re.findall(r"^Add-Setting '([A-Z_]+)'( -Comment)?$", ps1, re.M)
    assert [(n, bool(c)) for n, c in settings_sh] == [(n, bool(c)) for n, c in settings_ps1]
    assert [n for n, _ in settings_sh] == ["AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT", "ACS_RESOURCE_ID",
                                           "ACS_ENDPOINT"]  # fmt: skip
    notes_sh = re.findall(r'^note "([^"]*)" ([A-Z_]+)$', sh, re.M)
    notes_ps1 = re.findall(r"^Add-Note '([^']*)' '([A-Z_]+)'$", ps1, re.M)
    assert notes_sh == notes_ps1 and notes_sh
    # The same comment lines.
    comments_sh = re.findall(r"^comment '(# [^']*)'$", sh, re.M)
    comments_ps1 = re.findall(r"^\$Block\.Add\('(# [^']*)'\)$", ps1, re.M)
    assert comments_sh == comments_ps1 and len(comments_sh) == 3
    # The same filter of plain values.
    plain_sh = re.findall(r"grep -Eq '([^']+)'", sh)
    assert plain_sh[:2] == ["^[A-Za-z0-9][A-Za-z0-9:/._-]*$", "[A-Za-z0-9]{32,}"]
    assert f"-cmatch '{plain_sh[0]}'" in ps1 and f"-cmatch '{plain_sh[1]}'" in ps1
    assert 'set -- --environment "$AZURE_ENV_NAME"' in sh and "@('--environment', $env:AZURE_ENV_NAME)" in ps1
    for text in ("POSTPROVISION_ENV_FILE", "azd env get-values", "AZURE_OPENAI_API_KEY|OPENAI_API_KEY"):
        assert text in sh and text in ps1, text
    hint = re.search(r'HINT="([^"]+)"', sh)
    assert hint and f"$Hint = '{hint.group(1)}'" in ps1
