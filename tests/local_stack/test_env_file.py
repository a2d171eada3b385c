"""`.env` as `make up`, `make run` and `make all-in-one` read it: python-dotenv, the shell first."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from local_stack.env_file import EnvFileError, environment_with, read_env_file
from tests.local_stack.conftest import REPO, clean_env, run

CONNECTION_STRING = "endpoint=https://x.communication.azure.com/;accesskey=abc/def+ghi=="
PRINT_ENV = [sys.executable, "-c", "import os; print(os.environ['CS']); print(os.environ['NOTE'])"]


def test_an_unquoted_connection_string_is_read_intact(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n"
        f"AZURE_COMMUNICATION_CONNECTION_STRING={CONNECTION_STRING}\n"
        "KEY=a#b  # a comment after a space\n"
        'NOTE="one # two"\n'
        "export PORT=8001\n"
        "REF=${PORT}-x\n"
    )
    assert read_env_file(env) == {
        "AZURE_COMMUNICATION_CONNECTION_STRING": CONNECTION_STRING,
        "KEY": "a#b",
        "NOTE": "one # two",
        "PORT": "8001",
        "REF": "8001-x",
    }


def test_the_shell_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = tmp_path / ".env"
    env.write_text("PORT=8001\nOTHER=file\nREF=${PORT}\n")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.delenv("OTHER", raising=False)
    assert read_env_file(env)["REF"] == "9000"
    assert {k: environment_with(env)[k] for k in ("PORT", "OTHER")} == {"PORT": "9000", "OTHER": "file"}
    assert environment_with(tmp_path / "missing")["PORT"] == "9000"


def test_a_line_it_cannot_parse_is_an_error_naming_it_without_its_value(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("GOOD=1\nSECRET 'hunter2'\nALSO_GOOD=2\n")
    with pytest.raises(EnvFileError) as caught:
        read_env_file(env)
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(r"\.env line 2 \(SECRET\): python-dotenv cannot parse", message)
    assert "hunter2" not in message


def test_the_sample_parses_commented_and_uncommented(tmp_path: Path) -> None:
    sample = REPO / ".env.sample"
    assert read_env_file(sample) == {}  # as shipped: offline, nothing set
    uncommented = tmp_path / ".env"
    uncommented.write_text(re.sub(r"^# ([A-Z_]+=)", r"\1", sample.read_text(), flags=re.MULTILINE))
    values = read_env_file(uncommented)
    assert values["AZURE_COMMUNICATION_CONNECTION_STRING"].endswith("/;accesskey=abc123==")
    assert {"AZURE_OPENAI_ENDPOINT", "OPENAI_API_KEY", "CALLBACK_URI_HOST", "TWILIO_AUTH_TOKEN"} <= set(
        values
    )


def test_the_wrapper_runs_the_command_with_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"CS={CONNECTION_STRING}\nNOTE=from the file\n")
    ran = run(
        [sys.executable, "-m", "local_stack.env_file", "--file", str(env), "--", *PRINT_ENV], clean_env()
    )
    assert ran.status == 0, ran.output
    assert ran.stdout.splitlines() == [CONNECTION_STRING, "from the file"]

    ran = run(
        [sys.executable, "-m", "local_stack.env_file", "--file", str(env), "--", *PRINT_ENV],
        clean_env(NOTE="from the shell"),
    )
    assert ran.stdout.splitlines() == [CONNECTION_STRING, "from the shell"]


def test_the_wrapper_stops_at_a_bad_line_with_one_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(f"CS={CONNECTION_STRING}\nNOTE='unterminated\n")
    ran = run(
        [sys.executable, "-m", "local_stack.env_file", "--file", str(env), "--", *PRINT_ENV], clean_env()
    )
    assert ran.status == 2
    assert ran.stdout == ""  # the command never ran
    (line,) = ran.stderr.splitlines()
    assert f"{env} line 2 (NOTE): python-dotenv cannot parse" in line
