"""The dev gateway: the Functions routes and the media host on one port.

One port is all a tunnel (devtunnel, cloudflared, ngrok) has to expose when a real ACS number is
pointed at a laptop: `/api/*` for Event Grid and callbacks, `/ws/media` for the media stream.
"""

from __future__ import annotations

from aiohttp import web

from media_host.app import create_app
from media_host.settings import MediaSettings

from .functions_host import add_function_routes


def create_gateway(media_settings: MediaSettings, *, function_key: str) -> web.Application:
    app = create_app(media_settings)
    add_function_routes(app, function_key=function_key)
    return app
