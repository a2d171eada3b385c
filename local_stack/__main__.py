"""`python -m local_stack demo [--provider twilio]` (one simulated call, then exit) or
`python -m local_stack up` (stay up)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import demo, up
from .stack import PROVIDERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("mode", choices=("demo", "up"), nargs="?", default="demo")
    parser.add_argument(
        "--out", type=Path, default=Path("out"), help="where recordings, transcripts and logs go"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="gateway port for `up` (demo picks a free one)"
    )
    parser.add_argument(
        "--provider", choices=PROVIDERS, default="acs", help="the emulated phone network of the demo call"
    )
    args = parser.parse_args(argv)
    if args.mode == "up" and args.provider != "acs":
        parser.error("`up` serves ACS (emulated or real); --provider is for `demo`")

    args.out.mkdir(parents=True, exist_ok=True)
    log_file = args.out / "local-stack.log"
    file_handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.WARNING if args.mode == "demo" else logging.INFO)
    console.setFormatter(logging.Formatter("  %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[file_handler, console])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    print(f"(full logs: {log_file})")

    if args.mode == "demo":
        return demo.main(args.out, args.provider)
    return up.main(args.port)


if __name__ == "__main__":
    sys.exit(main())
