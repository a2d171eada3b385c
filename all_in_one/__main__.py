"""`python -m all_in_one`: serve the control routes and the media host on PORT (plain HTTP: the
platform terminates TLS) until SIGTERM, then drain; MEDIA_WORKERS processes behind the one port, each
serving every route (media_host.workers).

This is the image's command (all_in_one/Dockerfile, fly.toml) and the one the tests start.
"""

from __future__ import annotations

import logging
import os
import sys

from common.settings_reader import SettingsError
from media_host.app import LOG_FORMAT
from media_host.workers import run

from .gateway import create_gateway
from .settings import AllInOneSettings


def main() -> int:
    try:
        settings = AllInOneSettings.from_env(os.environ)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.media.log_level, format=LOG_FORMAT, stream=sys.stdout)
    # the control routes keep serving while calls drain: the calls in progress still get callbacks
    return run(
        settings.media,
        lambda: create_gateway(settings.media, keys=settings.function_keys),
        name="all-in-one",
    )


if __name__ == "__main__":
    sys.exit(main())
