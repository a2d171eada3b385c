"""`python -m local_stack` as a person runs it: a child process on 127.0.0.1, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import FOREIGN

REPO = Path(__file__).resolve().parents[2]
# Settings a developer's shell may hold that would change what these tests see.
LOCAL = ("PORT", "LOCAL_FUNCTION_KEY", "MEDIA_EXTRA_TOOLS", "MAX_CALL_SECONDS")


def clean_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN and k not in LOCAL}
    return {**env, **settings}


def cli(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "local_stack", *map(str, args)]


@dataclass(frozen=True)
class Ran:
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(command: list[str], env: Mapping[str, str], timeout: float = 60) -> Ran:
    done = subprocess.run(
        command, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    return Ran(done.returncode, done.stdout, done.stderr)
