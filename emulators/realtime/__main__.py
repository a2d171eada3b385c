"""`python -m emulators.realtime --port 8765`: the offline realtime engine, standalone."""

from __future__ import annotations

import argparse
import logging
import os

from aiohttp import web

from .server import EngineConfig, create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.realtime", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8765")))
    parser.add_argument(
        "--api-key",
        default=os.environ.get("REALTIME_ENGINE_API_KEY"),
        help="require this api-key (default: accept any; env REALTIME_ENGINE_API_KEY)",
    )
    parser.add_argument(
        "--pace", type=float, default=1.0, help="assistant audio speed vs real time (0 = unpaced; default 1)"
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = EngineConfig(api_key=args.api_key, pace=args.pace)
    print(f"AZURE_OPENAI_ENDPOINT=http://{args.host}:{args.port}", flush=True)
    web.run_app(create_app(config), host=args.host, port=args.port, print=None)


if __name__ == "__main__":
    main()
