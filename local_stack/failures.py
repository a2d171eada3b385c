"""Why the local stack could not run, told in one line per problem instead of a traceback.

Exit status 2 for what the person can fix in their settings (a busy port, a bad setting, extra tools
that do not load), 1 for anything else (whose traceback goes to the log file).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from common.settings_reader import SettingsError

from .stack import LocalStack

CONFIGURATION = 2
OTHER = 1


@dataclass(frozen=True)
class Failure:
    message: str  # one line per problem
    status: int  # CONFIGURATION or OTHER


def explain(exc: BaseException, *, port: int) -> Failure:
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:  # only the gateway has a fixed port
        return Failure(
            f"port {port} is in use (another `make up`?): set PORT=<another port>, or stop what holds it",
            CONFIGURATION,
        )
    if isinstance(exc, SettingsError):  # bad settings, or MEDIA_EXTRA_TOOLS that do not load: one line each
        return Failure(str(exc), CONFIGURATION)
    return Failure(f"{type(exc).__name__}: {exc}".replace("\n", " "), OTHER)


async def start_cleanly(stack: LocalStack) -> None:
    """Start the stack, or close what it had started before raising (nothing left for the exit to
    complain about, like an unclosed session)."""
    try:
        await stack.start()
    except BaseException:
        await stack.close()
        raise
