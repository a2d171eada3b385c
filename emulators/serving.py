"""Serving a stand-in's aiohttp app on this machine: one way, for every emulator and test server."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple[web.AppRunner, str]:
    """Start `app` on host:port (port 0: any free one); returns its runner (to clean up) and base URL."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    reachable = "127.0.0.1" if host in ("0.0.0.0", "") else host  # listening everywhere: say loopback
    if ":" in reachable:
        reachable = f"[{reachable}]"
    return runner, f"http://{reachable}:{runner.addresses[0][1]}"
