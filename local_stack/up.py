"""`make up`: the stack stays up for a person, on one port a tunnel can expose.

Without ACS settings the ACS emulator stands in for ACS; with them (AZURE_COMMUNICATION_CONNECTION_STRING
or ACS_ENDPOINT, plus CALLBACK_URI_HOST and MEDIA_HOST_URL pointing at a tunnel) a real ACS number
calls the laptop. Each call is printed as it happens (`console.Console`) and saved under the out
directory when it ends (`recordings.Recordings`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from .console import Console
from .failures import CONFIGURATION, start_cleanly
from .recordings import Recordings
from .stack import LocalStack


def _real_acs() -> bool:
    return bool(os.environ.get("AZURE_COMMUNICATION_CONNECTION_STRING") or os.environ.get("ACS_ENDPOINT"))


async def run_up(host: str, port: int, out_dir: Path) -> int:
    real_acs = _real_acs()
    if real_acs:
        missing = [
            n for n in ("ACS_RESOURCE_ID", "CALLBACK_URI_HOST", "MEDIA_HOST_URL") if not os.environ.get(n)
        ]
        if missing:
            print(
                f"real ACS needs {', '.join(missing)}: set them in .env (see docs/deploy.md, Connect a real ACS number to a laptop)",
                file=sys.stderr,
            )
            return CONFIGURATION
    stack = LocalStack(host=host, port=port, real_acs=real_acs)
    await start_cleanly(stack)
    console = Console()
    recordings = Recordings(stack, out_dir, on_saved=console.saved)
    stack.observe(console)
    stack.observe(recordings)
    assert stack.softphone is not None
    stack.softphone.recordings = recordings  # the page offers each call's files for download
    local = stack.gateway_url
    port = urlsplit(local).port or port  # the one bound when asked for any (0)
    print(
        f"""
The stack is up on port {port}.
  softphone (open it in a browser)  http://localhost:{port}/
  gateway (Functions + media host)  {local}
  health                            {local}/api/health   {local}/readyz
  Event Grid webhook                {local}/api/incoming-call?code=<function key>
  ACS callbacks                     {local}/api/callbacks
  media WebSocket                   ws://127.0.0.1:{port}/ws/media
  model                             {stack.model_url}
  function key                      {stack.function_key}   (set LOCAL_FUNCTION_KEY to keep it)
  each call's recording, transcript {out_dir}/call-*.wav, call-*.json""",
        flush=True,
    )
    if real_acs:
        public = os.environ["CALLBACK_URI_HOST"].rstrip("/")
        print(
            f"""
Real ACS: Event Grid must deliver Microsoft.Communication.IncomingCall to
  {public}/api/incoming-call?code=<function key>
ACS will call back {public}/api/callbacks and stream media to {os.environ["MEDIA_HOST_URL"]}/ws/media.
Call your ACS number now. Ctrl-C stops everything.""",
            flush=True,
        )
    else:
        print(
            f"""
ACS is emulated ({stack.emulator.rest.endpoint}). Talk to the assistant from the softphone, or place an
outbound call (the emulated callee answers and stays silent):
  curl -X POST '{local}/api/calls?code={stack.function_key}' -H 'content-type: application/json' \\
       -d '{{"target": "+14255550123", "profile": "restaurant"}}'
To have a real ACS number call this laptop, see docs/deploy.md, "Connect a real ACS number to a laptop". Ctrl-C stops everything.""",
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
        await recordings.close()  # the calls the close ended
    return 0


def main(host: str, port: int, out_dir: Path) -> int:
    return asyncio.run(run_up(host, port, out_dir))
