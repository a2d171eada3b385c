"""`make up` for a person at the console: each call printed as it happens and saved when it ends."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import wave
from pathlib import Path
from typing import Any

import aiohttp

from common.telemetry import CallIds
from local_stack.recordings import Recordings, SavedCall
from local_stack.stack import LocalStack
from media_host.call_events import CallEnded, CallEvent, MediaConnected, Turn, TurnTaken
from tests.local_stack.conftest import REPO, clean_env, cli

KEY = "local-stack-test-key"
CALLEE = "+14255550123"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def wav_shape(path: Path) -> tuple[int, float]:
    with wave.open(str(path)) as w:
        return w.getnchannels(), w.getnframes() / w.getframerate()


def files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


class Console:
    """The child's stdout, line by line, as a person watches it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def until(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        """The first line so far or to come that matches."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines[seen:]:
                    if match := re.search(pattern, line):
                        return match
                seen = len(self.lines)
                assert self.process.stdout is not None
                raw = await self.process.stdout.readline()
                assert raw, f"up exited; it printed {self.lines}"
                self.lines.append(raw.decode().rstrip("\n"))


CLOCK = r"\d\d:\d\d:\d\d"


async def place_call(http: aiohttp.ClientSession, gateway: str) -> str:
    """`make up`'s banner's curl: an outbound call the emulated callee answers; its short id."""
    async with http.post(
        f"{gateway}/api/calls", params={"code": KEY}, json={"target": CALLEE, "profile": "restaurant"}
    ) as response:
        assert response.status == 202, await response.text()
        call_id: str = (await response.json())["callConnectionId"]
        return call_id


async def test_outbound_calls_are_printed_and_saved(tmp_path: Path) -> None:
    """The emulated callee is silent: the assistant greets, then at MAX_CALL_SECONDS says goodbye and
    ends the first call; the second is still on when Ctrl-C stops the stack, and is saved too."""
    process = await asyncio.create_subprocess_exec(
        *cli("up", "--host", "127.0.0.1", "--port", "0", "--out", tmp_path),
        env=clean_env(LOCAL_FUNCTION_KEY=KEY, MAX_CALL_SECONDS="6"),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    console = Console(process)
    try:
        gateway = (await console.until(r"gateway \(Functions \+ media host\)\s+(http://127\.0\.0\.1:\d+)"))[1]
        async with aiohttp.ClientSession() as http:
            call_id = await place_call(http, gateway)
            short = call_id[:8]
            await console.until(rf"^{CLOCK} {short} connected \(profile restaurant\)$")
            greeting = await console.until(rf"^{CLOCK} {short} assistant: (.+)$")
            assert "thank you for calling" in greeting[1].lower()
            await console.until(rf"^{CLOCK} {short} assistant: .*time limit.*[Gg]oodbye")
            await console.until(
                rf"^{CLOCK} {short} ended: max_call_seconds \(by media_host\) after \d+\.\d s, 2 turns$"
            )
            saved = await console.until(rf"^{CLOCK} {short} saved (\S+\.wav) \(.*\) and (\S+\.json)$")
            second = (await place_call(http, gateway))[:8]
            await console.until(rf"^{CLOCK} {second} connected")
    finally:
        process.send_signal(signal.SIGINT)
        rest, stderr = await asyncio.wait_for(process.communicate(), 20)
        console.lines += rest.decode().splitlines()
    assert process.returncode == 0, stderr.decode()
    assert "Traceback" not in "\n".join(console.lines) + stderr.decode()
    assert any(re.search(rf"^{CLOCK} {second} saved \S+\.wav", line) for line in console.lines), console.lines

    recording, transcript_file = Path(saved[1]), Path(saved[2])
    assert recording.parent == transcript_file.parent == tmp_path
    transcript = read_json(transcript_file)
    assert transcript["summary"]["call_connection_id"] == call_id
    assert transcript["summary"]["direction"] == "outbound"
    assert transcript["summary"]["media_host_end_reason"] == "max_call_seconds"
    assert [t["role"] for t in transcript["turns"]] == ["assistant", "assistant"]  # greeting, goodbye
    channels, seconds = wav_shape(recording)
    assert channels == 2
    assert seconds > 2  # the greeting, as the callee heard it


async def test_a_call_without_an_emulated_leg_gets_its_transcript_only(tmp_path: Path) -> None:
    """Real ACS carries the audio: the local stack has the media host's word only."""
    stack = LocalStack(real_acs=True)  # not started: the observers are told by hand
    saved_calls: list[SavedCall] = []
    recordings = Recordings(stack, tmp_path, on_saved=saved_calls.append)
    ids = CallIds(correlation_id="corr", call_connection_id="real-acs-call-1")
    ended = CallEnded(
        why="acs_closed", duration_s=3.0, turns=1, barge_ins=0, underruns=0, reconnects=0, tools={}
    )
    events: list[CallEvent] = [
        MediaConnected("restaurant"),
        TurnTaken(Turn("assistant", "Hello", "item_1", 900)),
        ended,
    ]
    waiting = asyncio.create_task(recordings.wait("real-acs-call-1"))
    for event in events:
        stack.records.on_call_event(ids, event)
        recordings.on_call_event(ids, event)
    saved = await asyncio.wait_for(waiting, 5)
    await recordings.close()

    assert saved_calls == [saved] and recordings.by_call == {"real-acs-call-1": saved}
    assert saved.wav is None and saved.recording == ""
    assert files_in(tmp_path) == [saved.transcript]
    transcript = read_json(saved.transcript)
    assert transcript["summary"]["direction"] is None
    assert transcript["summary"]["media_host_end_reason"] == "acs_closed"
    assert transcript["turns"][0]["text"] == "Hello"
