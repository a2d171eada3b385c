"""What stops `python -m local_stack up` is one line on the console (exit 2 for settings), and each run
logs to a file of its own."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from local_stack.logs import KEEP
from tests.local_stack.conftest import Ran, clean_env, cli, run


def up(out: Path, *args: str, **settings: str) -> Ran:
    return run(cli("up", "--host", "127.0.0.1", "--out", out, *args), clean_env(**settings))


def problem_lines(ran: Ran) -> list[str]:
    """What the console showed beyond the log file's path; never a traceback."""
    assert "Traceback" not in ran.output
    (logs,) = ran.stdout.splitlines()
    assert logs.startswith("(full logs: ")
    return ran.stderr.splitlines()


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        ran = up(tmp_path, "--port", str(port))
    assert ran.status == 2
    assert problem_lines(ran) == [
        f"port {port} is in use (another `make up`?): set PORT=<another port>, or stop what holds it"
    ]


def test_bad_settings_are_a_line_each(tmp_path: Path) -> None:
    ran = up(tmp_path, "--port", "0", MAX_CALL_SECONDS="soon", AOAI_VOICE="robot")
    assert ran.status == 2
    lines = problem_lines(ran)
    assert lines[0] == "Invalid media host settings:"
    assert sorted(lines[1:]) == [
        "  - AOAI_VOICE='robot' must be one of alloy, ash, ballad, coral, echo, sage, shimmer, verse, marin, cedar",
        "  - MAX_CALL_SECONDS='soon' is not a number",
    ]


def test_extra_tools_that_do_not_load_are_one_line_naming_the_setting(tmp_path: Path) -> None:
    for spec, why in (
        ("no_such_package.tools:factory", "ModuleNotFoundError: No module named 'no_such_package'"),
        ("json:no_such_factory", "AttributeError: module 'json' has no attribute 'no_such_factory'"),
        ("no-colon", "must look like 'package.module:factory'"),
    ):
        ran = up(tmp_path, "--port", "0", MEDIA_EXTRA_TOOLS=spec)
        assert ran.status == 2, ran.output
        (line,) = problem_lines(ran)
        assert line.startswith(f"MEDIA_EXTRA_TOOLS={spec!r} ")
        assert why in line


def test_each_run_logs_to_a_file_of_its_own_and_the_newest_are_kept(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    gone = 99_999_999  # beyond Linux's pid_max: no process has it
    old = [logs / f"local-stack-20000101-0000{n:02}-{gone}.log" for n in range(KEEP)]
    for path in old:
        path.write_text("an old run\n")
    still_up = logs / f"local-stack-19991231-000000-{os.getpid()}.log"  # the oldest, but its run lives
    still_up.write_text("a long `make up`\n")

    first = up(tmp_path, "--port", "0", MAX_CALL_SECONDS="soon")
    second = up(tmp_path, "--port", "0", MAX_CALL_SECONDS="later")

    written = [
        Path(ran.stdout.splitlines()[0].removeprefix("(full logs: ").removesuffix(")"))
        for ran in (first, second)
    ]
    assert written[0] != written[1]
    assert sorted(logs.iterdir()) == sorted([still_up, *old[2:], *written])  # the two oldest made room
    for path, value in zip(written, ("soon", "later"), strict=True):
        text = path.read_text()
        assert f"MAX_CALL_SECONDS='{value}' is not a number" in text
        assert "Traceback" in text  # the console had one line; the file has the rest


def test_anything_else_is_one_line_and_status_1_with_the_traceback_in_the_log(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from local_stack import __main__ as cli, up\n"
        "def broken(*args: object) -> int:\n"
        "    raise RuntimeError('the unexpected')\n"
        "up.main = broken\n"
        f"sys.exit(cli.main(['up', '--port', '0', '--out', {str(tmp_path)!r}]))\n"
    )
    ran = run([sys.executable, "-c", script], clean_env())
    assert ran.status == 1
    (line,) = problem_lines(ran)
    (log,) = (tmp_path / "logs").iterdir()
    assert line == f"RuntimeError: the unexpected (traceback in {log})"
    assert "Traceback" in log.read_text()
