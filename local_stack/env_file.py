"""`python -m local_stack.env_file [--file .env] -- COMMAND...`: run COMMAND with `.env` read into its
environment, as `make up`, `make run` and `make all-in-one` do.

The file is read with python-dotenv, not sourced by a shell, so an unquoted value may hold `;` and `=`
(an ACS connection string). Variables already set in the environment win over the file. A line
python-dotenv cannot parse stops the command with one line naming it, instead of being skipped.
The production entry points never read `.env` themselves: only this wrapper does.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
from pathlib import Path

from dotenv.main import resolve_variables
from dotenv.parser import parse_stream

NAME = re.compile(r"\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)")  # how a line starts, before any secret


class EnvFileError(ValueError):
    """Lines of the file python-dotenv cannot parse; the message has one line per bad line."""


def read_env_file(path: Path) -> dict[str, str]:
    """The file's settings (none if there is no file); `${NAME}` is NAME of the environment, else of an
    earlier line."""
    if not path.is_file():
        return {}
    bindings = list(parse_stream(io.StringIO(path.read_text(encoding="utf-8"))))
    problems = [_unparsable(path, b.original.line, b.original.string) for b in bindings if b.error]
    if problems:
        raise EnvFileError("\n".join(problems))
    pairs = [(b.key, b.value) for b in bindings if b.key is not None]
    # override=False: the environment wins in `${NAME}` too, as it does in `environment_with`.
    return {k: v for k, v in resolve_variables(pairs, override=False).items() if v is not None}


def environment_with(path: Path) -> dict[str, str]:
    """This process's environment over the file's settings: what is already set wins."""
    return {**read_env_file(path), **os.environ}


def _unparsable(path: Path, line: int, text: str) -> str:
    name = NAME.match(text)  # the name only: the rest of the line may be a secret
    where = f"{path} line {line}" + (f" ({name.group(1)})" if name else "")
    return (
        f"{where}: python-dotenv cannot parse it; quote a value with spaces, ` #` or quotes (see .env.sample)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack.env_file", description=__doc__)
    parser.add_argument("--file", type=Path, default=Path(".env"), help="the settings file (default .env)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run, after --")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    try:
        env = environment_with(args.file)
    except EnvFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127


if __name__ == "__main__":
    sys.exit(main())
