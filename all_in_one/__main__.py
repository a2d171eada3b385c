"""`python -m all_in_one`: serve the control routes and the media host on PORT (plain HTTP: the
platform terminates TLS) until SIGTERM, then drain.

This is the image's command (all_in_one/Dockerfile, fly.toml) and the one the tests start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from common.settings_reader import SettingsError
from media_host.app import LOG_FORMAT, serve

from .gateway import create_gateway
from .settings import AllInOneSettings


def main() -> int:
    try:
        settings = AllInOneSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.media.log_level, format=LOG_FORMAT, stream=sys.stdout)
    app = create_gateway(settings.media, keys=settings.function_keys)
    # the control routes keep serving while calls drain: the calls in progress still get callbacks
    try:
        asyncio.run(
            serve(app, host=os.environ.get("HOST", "0.0.0.0"), port=settings.media.port, name="all-in-one")
        )
    except SettingsError as exc:  # MEDIA_EXTRA_TOOLS are loaded as the app starts
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
