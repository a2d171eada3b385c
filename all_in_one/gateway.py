"""The gateway: every Functions route and the media host on one port, in one process.

`python -m all_in_one` serves it on one always-on machine (seed A's Fly.io deployment); the local
stack serves the same app for `make demo` and `make up`, where one port is all a tunnel has to expose.
"""

from __future__ import annotations

from aiohttp import web

from functions import runtime as functions_runtime
from media_host.app import create_app
from media_host.settings import MediaSettings

from .functions_host import FunctionKeys, add_function_routes


def create_gateway(media_settings: MediaSettings, *, keys: FunctionKeys) -> web.Application:
    app = create_app(media_settings)
    add_function_routes(app, keys=keys)
    app.on_cleanup.append(_close_control_plane)
    return app


async def _close_control_plane(app: web.Application) -> None:
    # The control plane's client, verifier and telemetry live in this process and this event loop.
    await functions_runtime.reset()
