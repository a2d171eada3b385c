"""`python -m media_host`: serve the media host until SIGTERM, then drain; MEDIA_WORKERS processes
behind the one port (media_host.workers).

This is the container's command and the one the tests start.
"""

from __future__ import annotations

import logging
import os
import sys

from common.settings_reader import SettingsError

from .app import LOG_FORMAT, create_app
from .settings import MediaSettings
from .workers import run


def main() -> int:
    try:
        settings = MediaSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format=LOG_FORMAT, stream=sys.stdout)
    return run(settings, lambda: create_app(settings), name="media host")


if __name__ == "__main__":
    sys.exit(main())
