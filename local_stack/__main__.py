"""`python -m local_stack demo [--provider twilio]` (one simulated call, then exit) or
`python -m local_stack up` (stay up). Each run logs to a file of its own under <out>/logs; a problem
that stops it is one line on the console (exit status 2 for settings, 1 for anything else)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import demo, up
from .failures import CONFIGURATION, explain
from .logs import start_run_log
from .stack import PROVIDERS

log = logging.getLogger("local_stack")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("mode", choices=("demo", "up"), nargs="?", default="demo")
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="where recordings, transcripts and logs go"
    )
    parser.add_argument(
        "--host", default="0.0.0.0", help="address `up` listens on (default: all, for a tunnel)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=os.environ.get("PORT", "8000"),  # a string default goes through `type` too
        help="gateway port for `up` (default PORT, else 8000; 0: any free one); demo picks a free one",
    )
    parser.add_argument(
        "--provider", choices=PROVIDERS, default="acs", help="the emulated phone network of the demo call"
    )
    args = parser.parse_args(argv)
    if args.mode == "up" and args.provider != "acs":
        parser.error("`up` serves ACS (emulated or real); --provider is for `demo`")

    run_log = start_run_log(args.out)
    print(f"(full logs: {run_log.path})", flush=True)
    try:
        if args.mode == "demo":
            return demo.main(args.out, args.provider)
        return up.main(args.host, args.port, args.out)
    except KeyboardInterrupt:  # Ctrl-C before `up` handles it itself
        return 130
    except Exception as exc:
        failure = explain(exc, port=args.port)
        run_log.console_off()
        log.error("%s", failure.message, exc_info=exc)
        where = "" if failure.status == CONFIGURATION else f" (traceback in {run_log.path})"
        print(failure.message + where, file=sys.stderr, flush=True)
        return failure.status


if __name__ == "__main__":
    sys.exit(main())
