"""Serving a stand-in's aiohttp app on this machine: one way, for every emulator and test server."""

from __future__ import annotations

import socket

import aiohttp
from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start `app` on host:port (port 0: any free one); returns its runner (to clean up) and base URL."""
    return await serve_on(app, listen(host, port))


def listen(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening socket whose URL (`base_url`) is known before the app it will serve is built, for an
    app configured with its own public URL."""
    return socket.create_server((host, port))


def base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host  # listening everywhere: say loopback
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


async def serve_on(app: web.Application, sock: socket.socket) -> tuple[web.AppRunner, str]:
    """Start `app` on a socket from `listen`, which it then owns; returns its runner and base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, base_url(sock)


async def dial(
    url: str, headers: dict[str, str], *, timeout: aiohttp.ClientTimeout | None = None
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A WebSocket as a stand-in dials it (a session of its own, closed again if the upgrade fails)."""
    session = aiohttp.ClientSession(timeout=timeout) if timeout else aiohttp.ClientSession()
    try:
        return session, await session.ws_connect(url, headers=headers, max_msg_size=0)
    except BaseException:
        await session.close()
        raise
