"""`python -m emulators.realtime.measure`: one bundled call through the engine, with its costs.

Plays assets/caller/*.wav (script.json order) into an in-process engine over a real WebSocket, as
20 ms appends paced in real time (`--fast`: as fast as the socket takes them), and prints per turn:
the transcript, the recogniser's CPU, and the time from the end of the caller's turn being known to
the first assistant audio delta being sent. CPU figures are thread time of the engine's workers.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp

from .server import EngineConfig, EngineServer

CALLER_DIR = Path(__file__).resolve().parents[2] / "assets" / "caller"
FRAME_BYTES = 960  # 20 ms at 24 kHz PCM16


async def run(*, fast: bool) -> None:
    lines = json.loads((CALLER_DIR / "script.json").read_text())["lines"]
    cpu_start = time.process_time()
    async with EngineServer(EngineConfig(pace=0 if fast else 1)) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.url.replace("http", "ws", 1) + "/openai/v1/realtime?model=measure")
        done = asyncio.Event()
        responses = 0

        async def read() -> None:
            nonlocal responses
            async for msg in ws:
                event: dict[str, Any] = json.loads(msg.data)
                if event["type"] == "response.done":
                    responses += 1
                    done.set()

        reader = asyncio.create_task(read())
        session = {
            "type": "realtime",
            "audio": {"input": {"transcription": {"model": "whisper-1"}}},
            "tools": [{"type": "function", "name": "end_call"}],
        }
        await ws.send_str(json.dumps({"type": "session.update", "session": session}))
        await ws.send_str(json.dumps({"type": "response.create"}))
        for n, line in enumerate(lines, start=2):
            while responses < n - 1:
                done.clear()
                await done.wait()
            with wave.open(str(CALLER_DIR / line["file"])) as w:
                pcm = w.readframes(w.getnframes())
            started = time.monotonic()
            for k, offset in enumerate(range(0, len(pcm), FRAME_BYTES)):
                frame = base64.b64encode(pcm[offset : offset + FRAME_BYTES]).decode()
                await ws.send_str('{"type":"input_audio_buffer.append","audio":"' + frame + '"}')
                if not fast:
                    await asyncio.sleep(max(0.0, started + (k + 1) * 0.02 - time.monotonic()))
        while responses < len(lines) + 1:
            done.clear()
            await done.wait()
        await ws.close()
        await reader
        await asyncio.sleep(0.1)
        stats = server.engine.finished[-1]
    cpu = time.process_time() - cpu_start
    print(f"{'turn':<34} {'ASR CPU ms':>10} {'end->audio ms':>14}")
    for turn in stats.turns:
        latency = f"{turn.end_to_first_audio_ms:.1f}" if turn.end_to_first_audio_ms is not None else "-"
        print(f"{turn.transcript[:34]:<34} {turn.asr_cpu_ms:>10.1f} {latency:>14}")
    n = len(stats.turns)
    print(
        f"\n{n} turns, {stats.audio_in_ms / 1000:.1f} s caller audio, {stats.audio_out_ms / 1000:.1f} s assistant audio"
        f"\nlistener (resample+VAD+ASR) {stats.listener_cpu_ms:.0f} ms CPU = {stats.listener_cpu_ms / n:.0f} ms/turn;"
        f" speech synthesis {stats.tts_cpu_ms:.0f} ms CPU"
        f"\nwhole process (engine + this client, JSON, sockets) {cpu * 1000:.0f} ms CPU = {cpu * 1000 / n:.0f} ms/turn"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.realtime.measure", description=__doc__)
    parser.add_argument("--fast", action="store_true", help="send caller audio faster than real time")
    asyncio.run(run(fast=parser.parse_args().fast))


if __name__ == "__main__":
    main()
