"""`python -m media_host`: serve the media host until SIGTERM, then drain.

This is the container's command and the one the tests start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from common.settings_reader import SettingsError

from .app import LOG_FORMAT, create_app, serve
from .settings import MediaSettings


def main() -> int:
    try:
        settings = MediaSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stdout)
    app = create_app(settings)
    try:
        asyncio.run(serve(app, host=os.environ.get("HOST", "0.0.0.0"), port=settings.port, name="media host"))
    except SettingsError as exc:  # MEDIA_EXTRA_TOOLS are loaded as the app starts
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
