"""Log lines that any input can safely end up in: bounded in length, writable whatever the text.

A value from outside (a header, a model's error text, a malformed message's content) can reach a log
line. Unbounded, it floods the log and Application Insights; with a lone surrogate, the stream
handler cannot encode the line and the record is lost; with a carriage return it can forge a line.
`install()` makes every record's message safe in one place, for every logger of the process.
"""

from __future__ import annotations

import logging

MAX_LOG_CHARS = 2000
# C0 controls other than tab and newline (our own messages use those) are shown as escapes
_CONTROLS = {c: f"\\x{c:02x}" for c in range(32) if c not in (9, 10)} | {127: "\\x7f"}


def bounded(text: str, limit: int = MAX_LOG_CHARS) -> str:
    """`text` cut to `limit` characters (saying how much was cut), controls and lone surrogates escaped."""
    if len(text) > limit:
        text = f"{text[:limit]}... [{len(text) - limit} more characters]"
    return text.translate(_CONTROLS).encode("utf-8", "backslashreplace").decode("utf-8")


class SafeLogRecord(logging.LogRecord):
    def getMessage(self) -> str:
        message = str(self.msg)
        if self.args:
            args = self.args
            if isinstance(args, tuple):  # a value may not start a line of its own: our text may
                args = tuple(a.replace("\n", "\\n") if isinstance(a, str) else a for a in args)
            message = message % args
        return bounded(message)


def install() -> None:
    """Every log record of this process made safe (idempotent)."""
    logging.setLogRecordFactory(SafeLogRecord)
