"""`make up`: the stack stays up for a person, on one port a tunnel can expose."""

from __future__ import annotations

import asyncio
import signal

from .stack import LocalStack


async def run_up(port: int) -> int:
    stack = LocalStack(host="0.0.0.0", port=port)
    await stack.start()
    local = f"http://127.0.0.1:{port}"
    print(
        f"""
The stack is up.
  gateway (Functions + media host)  {local}
  health                            {local}/api/health    {local}/readyz
  Event Grid webhook                {local}/api/incoming-call?code={stack.function_key}
  ACS callbacks                     {local}/api/callbacks
  media WebSocket                   ws://127.0.0.1:{port}/ws/media
  model                             {stack.model_url}
  ACS emulator (Call Automation)    {stack.emulator.rest.endpoint}

Place an emulated outbound call (the emulated callee answers; you can watch the logs):
  curl -X POST '{local}/api/calls?code={stack.function_key}' -H 'content-type: application/json' \\
       -d '{{"target": "+14255550123", "profile": "restaurant"}}'

A real ACS number instead of the emulator: expose port {port} with a tunnel
(devtunnel host -p {port} --allow-anonymous, cloudflared tunnel --url http://localhost:{port}, or
ngrok http {port}); set CALLBACK_URI_HOST=https://<tunnel> and MEDIA_HOST_URL=wss://<tunnel> with
your ACS settings in .env and run the gateway with `make run`. See README.md, "Connect a real number".
Ctrl-C stops everything.""",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await stack.close()
    return 0


def main(port: int) -> int:
    return asyncio.run(run_up(port))
