"""`python -m media_host`: serve the media host until SIGTERM, then drain.

This is the container's command and the one the tests start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from common.settings_reader import SettingsError

from .app import create_app, drain
from .settings import MediaSettings

log = logging.getLogger("media_host")


async def serve(settings: MediaSettings, *, host: str = "0.0.0.0") -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, settings.port)
    await site.start()
    log.info("media host listening on %s:%d (/ws/media, /healthz, /readyz)", host, settings.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stop signal received")
    await drain(app)
    await runner.cleanup()
    log.info("media host stopped")


def main() -> int:
    try:
        settings = MediaSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stdout,
    )
    asyncio.run(serve(settings, host=os.environ.get("HOST", "0.0.0.0")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
