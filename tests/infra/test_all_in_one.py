"""The all-in-one process (`python -m all_in_one`) and its image, without a Docker engine: the start-up
checks, the function key, the SIGTERM drain, and the image's command run from a folder holding only
what all_in_one/Dockerfile COPYs (the helpers and the lint are tests/infra/test_dockerfile.py's)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from all_in_one.settings import AllInOneSettings
from common.settings_reader import SettingsError
from emulators.acs.call_automation import CallAutomationStandIn
from emulators.acs.media_leg import MediaLeg
from emulators.acs.tokens import AcsTokenIssuer
from tests.conftest import AUDIENCE, media_env
from tests.fake_realtime import FakeRealtime
from tests.infra.bicep import ROOT
from tests.infra.test_dockerfile import (
    SECRET_NAME,
    build_context_copy,
    cmd,
    copies,
    env_of,
    ignored,
    instructions,
    stages,
)
from tests.signals import tone
from tests.test_media_host_process import MediaHostProcess

DOCKERFILE = ROOT / "all_in_one" / "Dockerfile"
IGNOREFILE = ROOT / "all_in_one" / "Dockerfile.dockerignore"
FUNCTION_KEY = "0123456789abcdef" * 4  # what `openssl rand -hex 32` prints
EVENT_GRID_KEY = "fedcba9876543210" * 4  # FUNCTION_KEY_INCOMING_CALL: opens /api/incoming-call only
COPIED = {"all_in_one/", "common/", "functions/", "function_app.py", "media_host/", "prompts/"}
TWILIO = {"TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "f" * 32}
# The public URLs are only handed to Twilio and ACS, which none of these tests plays.
PUBLIC_URLS = {"CALLBACK_URI_HOST": "https://voice.fly.dev", "MEDIA_HOST_URL": "wss://voice.fly.dev"}
# Seed A's deployment: a Twilio number and the OpenAI API, no ACS at all.
TWILIO_ONLY = {**TWILIO, **PUBLIC_URLS, "OPENAI_API_KEY": "sk-test", "FUNCTION_KEY": FUNCTION_KEY}


class AllInOneProcess(MediaHostProcess):
    """`python -m all_in_one` started from `cwd`."""

    def __init__(self, env: Mapping[str, str], cwd: Path = ROOT) -> None:
        super().__init__(dict(env))
        self.env.update(HOST="127.0.0.1", PORT=str(self.port))  # over the image's own
        self.cwd = cwd

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "all_in_one", cwd=self.cwd, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())


@pytest.fixture
def settings_env(issuer: AcsTokenIssuer, acs: CallAutomationStandIn, model: FakeRealtime) -> dict[str, str]:
    """Both legs (ACS and Twilio) and the scripted model."""
    keys = {"FUNCTION_KEY": FUNCTION_KEY, "FUNCTION_KEY_INCOMING_CALL": EVENT_GRID_KEY}
    return {**media_env(issuer, acs, model), **TWILIO, **PUBLIC_URLS, **keys}


@pytest.fixture
async def spawn() -> AsyncIterator[list[AllInOneProcess]]:
    started: list[AllInOneProcess] = []
    yield started
    for process in started:
        await process.stop()


async def launch(spawn: list[AllInOneProcess], env: Mapping[str, str], cwd: Path = ROOT) -> AllInOneProcess:
    process = AllInOneProcess(env, cwd)
    spawn.append(process)
    await process.start()
    return process


# --- settings -------------------------------------------------------------------------------------


def problems(env: Mapping[str, str]) -> str:
    with pytest.raises(SettingsError) as refused:
        AllInOneSettings.from_env(env)
    return str(refused.value)


def test_a_twilio_only_deployment_needs_no_acs_setting() -> None:
    settings = AllInOneSettings.from_env(TWILIO_ONLY)
    assert settings.media.acs is None
    assert settings.media.model.vendor == "openai"
    assert FUNCTION_KEY not in repr(settings)


def test_every_problem_of_both_planes_is_named_once() -> None:
    env = {
        **TWILIO_ONLY,
        "ACS_ENDPOINT": "not a url",  # ACS half configured is a mistake, not "no ACS"
        "OUTBOUND_ALLOW_LIST": "12345",
    }
    del env["CALLBACK_URI_HOST"], env["FUNCTION_KEY"]
    message = problems(env)
    for named in (
        "FUNCTION_KEY is required",
        "CALLBACK_URI_HOST is required",
        "ACS_RESOURCE_ID is required",
        "ACS_ENDPOINT must be a URL",
        "OUTBOUND_ALLOW_LIST entry #1",
    ):
        assert named in message, message
    assert message.count("ACS_ENDPOINT must be a URL") == 1, message  # both planes read it


@pytest.mark.parametrize("name", ["FUNCTION_KEY", "FUNCTION_KEY_START_CALL"])
@pytest.mark.parametrize("key", ["short", "a+b/" + "c" * 40, "x" * 31])
def test_a_guessable_or_unquotable_function_key_is_refused_without_being_shown(name: str, key: str) -> None:
    message = problems({**TWILIO_ONLY, name: key})
    assert f"{name} must be at least 32" in message
    assert key not in message


def test_a_function_key_opens_its_function_only_and_the_host_key_every_one() -> None:
    env = {**TWILIO_ONLY, "FUNCTION_KEY_INCOMING_CALL": EVENT_GRID_KEY}
    keys = AllInOneSettings.from_env(env).function_keys
    assert keys.open("incoming_call", EVENT_GRID_KEY) and not keys.open("start_call", EVENT_GRID_KEY)
    assert keys.open("incoming_call", FUNCTION_KEY) and keys.open("start_call", FUNCTION_KEY)
    assert not keys.open("start_call", "") and not keys.open("start_call", FUNCTION_KEY[:-1])
    assert keys.open("issue_token", FUNCTION_KEY) and not keys.open("issue_token", EVENT_GRID_KEY)
    assert FUNCTION_KEY not in repr(keys) and EVENT_GRID_KEY not in repr(keys)


def test_a_key_for_no_such_function_is_named() -> None:
    message = problems({**TWILIO_ONLY, "FUNCTION_KEY_CALLS": FUNCTION_KEY})
    assert "FUNCTION_KEY_CALLS names no function that takes a key" in message
    assert "FUNCTION_KEY_START_CALL" in message


async def test_bad_settings_stop_the_start_with_status_2(spawn: list[AllInOneProcess]) -> None:
    process = await launch(spawn, {"MAX_CONCURRENT_CALLS": "many"})
    assert await process.wait() == 2
    for named in (
        "FUNCTION_KEY is required",
        "AZURE_OPENAI_ENDPOINT is required",
        "MAX_CONCURRENT_CALLS='many'",
    ):
        assert named in process.output, process.output


# --- the process ----------------------------------------------------------------------------------


async def check_routes(http: aiohttp.ClientSession, url: str) -> None:
    """What the README's checks from outside expect, and the function key."""
    async with http.get(f"{url}/api/health") as health:  # ANONYMOUS
        assert health.status == 200
        assert "settings" in await health.json()
    for method in ("GET", "HEAD"):  # a number set to HTTP GET; `curl -I`
        async with http.request(method, f"{url}/api/twilio/voice") as not_post:
            assert not_post.status == 405
    async with http.post(f"{url}/api/twilio/voice", data={"CallSid": "CA" + "0" * 32}) as unsigned:
        assert unsigned.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as door:  # `npx wscat -c wss://<app>/ws/twilio`
        await http.ws_connect(f"{url}/ws/twilio")
    assert door.value.status == 403
    for route in ("/api/calls", "/api/token"):
        for key in (None, "wrong" * 10, EVENT_GRID_KEY):  # FUNCTION: the host's 401, before the function runs
            async with http.post(f"{url}{route}", params={"code": key} if key else {}, data=b"{") as refused:
                assert refused.status == 401
        async with http.post(f"{url}{route}", headers={"x-functions-key": FUNCTION_KEY}, data=b"{") as bad:
            assert bad.status == 400  # the function itself answered


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_drains_calls_while_the_control_routes_still_serve(
    spawn: list[AllInOneProcess],
    settings_env: dict[str, str],
    issuer: AcsTokenIssuer,
    model: FakeRealtime,
    workers: str,
) -> None:
    process = await launch(spawn, {**settings_env, "MEDIA_DRAIN_SECONDS": "30", "MEDIA_WORKERS": workers})
    await process.ready()
    leg = MediaLeg()
    await leg.connect(f"{process.url}/ws/media", issuer.sign(audience=AUDIENCE))
    socket = await model.socket()
    await socket.wait_for("response.create")

    process.terminate()
    # a new connection per request: with two workers, both of them answer
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with asyncio.timeout(5):
            while (await http.get(f"{process.url}/readyz")).status != 503:
                await asyncio.sleep(0.02)
        await check_routes(http, process.url)  # a live call's callbacks still get through
    speech = tone(600, 0.2, 24_000)
    await leg.stream(speech, realtime=False)
    assert await socket.wait_audio_bytes(len(speech)) == speech
    await leg.close()
    assert await process.wait(timeout=10) == 0
    assert "draining: 1 calls in progress" in process.output
    assert "all-in-one stopped" in process.output


# --- the image ------------------------------------------------------------------------------------


def test_runs_as_a_fixed_non_root_user_with_the_tests_command() -> None:
    final = stages(DOCKERFILE)[-1]
    keywords = [i.keyword for i in final]
    (user,) = [i.arguments for i in final if i.keyword == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"USER {user}: a fixed numeric uid, not root"
    assert keywords.index("USER") < keywords.index("CMD")
    assert cmd(DOCKERFILE) == ["python", "-m", "all_in_one"]  # exec form: PID 1 gets the kill signal
    assert "ENTRYPOINT" not in keywords


def test_only_both_planes_code_and_their_pinned_dependencies_go_in() -> None:
    builder, final = stages(DOCKERFILE)[0], stages(DOCKERFILE)[-1]
    assert {source for source, _ in copies(builder)} == {"requirements.txt", "media_host/requirements.txt"}
    (install,) = [i.arguments for i in builder if i.keyword == "RUN" and "pip install" in i.arguments]
    assert re.fullmatch(r"/opt/venv/bin/pip install --no-cache-dir -r \S+ -r \S+", install), install
    assert {source for source, _ in copies(final)} == COPIED
    assert any(i.keyword == "COPY" and i.arguments == "--from=builder /opt/venv /opt/venv" for i in final)
    for instruction in instructions(DOCKERFILE):
        if instruction.keyword in ("ENV", "ARG"):
            for pair in instruction.arguments.split():
                assert not SECRET_NAME.search(pair.partition("=")[0]), f"{instruction.keyword} {pair}"


def test_the_ignore_file_sends_only_what_the_image_copies() -> None:
    for kept in (
        "all_in_one/__main__.py",
        "function_app.py",
        "functions/twiml.py",
        "media_host/app.py",
        "requirements.txt",
        "media_host/requirements.txt",
        "prompts/restaurant.txt",
    ):
        assert not ignored(kept, IGNOREFILE), kept
    for left_out in (
        "local_stack/stack.py",
        "emulators/acs/tokens.py",
        "tests/conftest.py",
        "infra/main.bicep",
        "fly.toml",
        ".env",
        "local.settings.json",
        ".venv/bin/python",
        ".git/config",
        "functions/__pycache__/settings.cpython-311.pyc",
    ):
        assert ignored(left_out, IGNOREFILE), left_out


async def test_the_image_contents_serve_both_planes(
    tmp_path: Path, spawn: list[AllInOneProcess], settings_env: dict[str, str]
) -> None:
    app = tmp_path / "app"  # WORKDIR /app
    build_context_copy(app, DOCKERFILE, IGNOREFILE)
    assert {p.name + ("/" if p.is_dir() else "") for p in app.iterdir()} == COPIED
    image_env = {k: v for k, v in env_of(stages(DOCKERFILE)[-1]).items() if k != "PATH"}  # the venv's
    # two workers: the manager runs from what the image holds too
    process = AllInOneProcess({**image_env, **settings_env, "MEDIA_WORKERS": "2"}, cwd=app)
    # The code comes from the copy, not from the repository.
    where = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", "import all_in_one, functions, function_app, media_host, common\n"
         "for m in (all_in_one, functions, function_app, media_host, common): print(m.__file__)"],
        cwd=app, env=process.env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    for path in where.stdout.split():
        assert Path(path).is_relative_to(app), path

    spawn.append(process)
    await process.start()
    await process.ready()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{process.url}/readyz") as ready:
            assert (await ready.json())["ready"] is True
        await check_routes(http, process.url)
    process.terminate()
    assert await process.wait(timeout=20) == 0
    assert "all-in-one listening" in process.output, process.output
    assert "/api/calls" in process.output and "/ws/media" in process.output
