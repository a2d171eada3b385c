"""Where a local stack run logs: a file of its own under out/logs (two `make up`s never share one), the
newest few kept, and the console, where an exception is one line (its traceback is in the file)."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

KEEP = 20  # run logs kept under out/logs, newest first
PREFIX = "local-stack-"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class OneLineFormatter(logging.Formatter):
    """The console's lines: an exception is named, not traced."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"  {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f" ({type(exc).__name__}: {exc}; traceback in the log file)"
        return line


@dataclass(frozen=True)
class RunLog:
    path: Path
    console: logging.Handler

    def console_off(self) -> None:
        """From now on the file alone: after a failure the console has had its one line."""
        logging.getLogger().removeHandler(self.console)


def start_run_log(out_dir: Path, *, keep: int = KEEP) -> RunLog:
    """Log everything at INFO to a new file under `out_dir`/logs, warnings and errors to stdout too (the
    console tells of calls itself: `demo.Printer`, `console.Console`)."""
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    # Names sort by time: UTC, so no clock change reorders them; the pid tells apart two runs in a second.
    older = sorted(logs.glob(f"{PREFIX}*.log"))
    for old in older[: max(0, len(older) - (keep - 1))]:
        if not _running(old):  # a `make up` that has been up a long time still writes its own
            old.unlink(missing_ok=True)  # another run may be pruning too
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    path = logs / f"{PREFIX}{stamp}-{os.getpid()}.log"
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.WARNING)
    console.setFormatter(OneLineFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[file_handler, console], force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return RunLog(path, console)


def _running(log: Path) -> bool:
    """Whether the run that writes `log` (its pid ends the name) is still alive on this machine."""
    pid = log.stem.rpartition("-")[2]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
