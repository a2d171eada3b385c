"""`make demo`: one complete simulated inbound PSTN call through the whole stack.

emulator → Event Grid → function → answer_call → media WebSocket → media host → model → audio back
→ the assistant books a table and ends the call with end_call → hang-up → CallDisconnected.
It prints the conversation as it happens and a summary, writes a stereo recording (caller left,
assistant right) and a JSON transcript under out/, and exits non-zero if the call went wrong.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emulators.acs.caller import AssistantSilent, CallerLine, converse, script
from emulators.acs.emulator import EmulatedCall
from media_host.call_session import CallSession

from .stack import LocalStack

CALLER_NUMBER = "+14255550123"
CALL_TIMEOUT_S = 120.0


@dataclass
class Summary:
    answered_ms: int | None = None
    first_assistant_audio_ms: int | None = None
    caller_turns: int = 0
    assistant_turns: int = 0
    barge_ins: int = 0
    turn_latency_ms: list[int] = field(default_factory=list)  # caller stops speaking -> answer starts
    hang_up: str | None = None
    media_host_end_reason: str | None = None
    callbacks: list[str] = field(default_factory=list)
    tools: dict[str, int] = field(default_factory=dict)
    recording: str = ""
    transcript: str = ""
    problems: list[str] = field(default_factory=list)


class Printer:
    """Prints each turn as the media host records it, with its time into the call."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.printed = 0

    def line(self, who: str, text: str, at: float | None = None) -> None:
        at_ms = int(((at or time.monotonic()) - self.started) * 1000)
        print(f"  {at_ms / 1000:7.2f}s  {who:<9} {text}", flush=True)

    def new_turns(self, session: CallSession | None) -> None:
        if session is None:
            return
        for turn in session.turns[self.printed :]:
            who = "caller" if turn.role == "caller" else "assistant"
            text = turn.text + (" [interrupted]" if turn.interrupted else "")
            self.line(who, text, session.started_at + turn.at_ms / 1000)
        self.printed = len(session.turns)


async def run_demo(out_dir: Path) -> int:
    stack = LocalStack()
    await stack.start()
    print(
        f"local stack up: gateway {stack.gateway_url}, model {stack.model_url}, ACS emulator {stack.emulator.rest.endpoint}"
    )
    try:
        return await _one_call(stack, out_dir)
    finally:
        await stack.close()


async def _one_call(stack: LocalStack, out_dir: Path) -> int:
    summary = Summary()
    print(f"\ncalling {CALLER_NUMBER} -> {stack.number} ...")
    call = await stack.emulator.incoming_call(
        stack.incoming_call_url, caller=CALLER_NUMBER, callee=stack.number
    )
    printer = Printer(call.announced_at)
    async with asyncio.timeout(15):
        await call.media_ready.wait()
    if call.answered_at is not None:
        summary.answered_ms = int((call.answered_at - call.announced_at) * 1000)
        printer.line("acs", f"answered (CallConnected) in {summary.answered_ms} ms", call.answered_at)
    leg = call.leg
    if leg is None:
        summary.problems.append(f"no media stream: callbacks were {call.callback_types()}")
        return _finish(summary, call, None, out_dir, stack)
    printer.line("acs", f"media stream connected ({leg.sample_rate} Hz)", leg.connected_at)

    session: CallSession | None = None

    async def follow() -> None:
        nonlocal session
        while not call.ended.is_set():
            session = session or stack.session(call.call_connection_id or "")
            printer.new_turns(session)
            await asyncio.sleep(0.1)

    follower = asyncio.create_task(follow())
    lines = script()

    def said(line: CallerLine) -> None:
        printer.line("(caller)", f"plays {line.file}: \u201c{line.text}\u201d")

    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            await converse(leg, lines, on_line=said)
            await call.ended.wait()
    except AssistantSilent as exc:
        summary.problems.append(str(exc))
    except TimeoutError:
        summary.problems.append(f"the call did not end within {CALL_TIMEOUT_S:.0f} s")
    finally:
        await asyncio.sleep(0.2)
        follower.cancel()
        printer.new_turns(session)
    heard = leg.heard()
    if heard:
        summary.first_assistant_audio_ms = int((heard[0].start - leg.connected_at) * 1000)
    return _finish(summary, call, session, out_dir, stack)


def _finish(
    summary: Summary, call: EmulatedCall, session: CallSession | None, out_dir: Path, stack: LocalStack
) -> int:
    summary.hang_up = call.end_reason
    summary.callbacks = call.callback_types()
    if session is not None:
        summary.media_host_end_reason = session.end_reason
        summary.caller_turns = sum(t.role == "caller" for t in session.turns)
        summary.assistant_turns = sum(t.role == "assistant" for t in session.turns)
        summary.barge_ins = len(session.stats.barge_ins)
        summary.turn_latency_ms = [round(ms) for ms in session.stats.turn_latency_ms]
        summary.tools = dict(session.stats.tool_calls)
    _check(summary, session)

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    recording = out_dir / f"call-{stamp}.wav"
    transcript = out_dir / f"call-{stamp}.json"
    if call.leg is not None:
        seconds = call.leg.write_recording(recording, since=call.leg.connected_at)
        summary.recording = f"{recording} ({seconds:.1f} s, stereo: caller left, assistant right)"
    summary.transcript = str(transcript)
    turns: list[dict[str, Any]] = [asdict(t) for t in session.turns] if session is not None else []
    transcript.write_text(
        json.dumps({"summary": asdict(summary), "turns": turns}, indent=2) + "\n", encoding="utf-8"
    )

    print("\nsummary")
    print(f"  answered in             {summary.answered_ms} ms")
    print(f"  first assistant audio   {summary.first_assistant_audio_ms} ms after the media stream connected")
    print(f"  turns                   {summary.caller_turns} caller, {summary.assistant_turns} assistant")
    print(f"  barge-ins               {summary.barge_ins}")
    latencies = ", ".join(f"{ms}" for ms in summary.turn_latency_ms) or "none"
    print(f"  turn latency            {latencies} ms (caller stops speaking -> answer audio starts)")
    print(f"  tools                   {summary.tools or 'none'}")
    print(f"  hang-up                 {summary.hang_up} (media host: {summary.media_host_end_reason})")
    print(f"  callbacks               {', '.join(summary.callbacks)}")
    print(f"  recording               {summary.recording or 'none'}")
    print(f"  transcript              {summary.transcript}")
    if summary.problems:
        print("\nTHE CALL DID NOT GO AS EXPECTED:\n  - " + "\n  - ".join(summary.problems))
        return 1
    print("\nok: the table is booked and the assistant ended the call")
    return 0


def _check(summary: Summary, session: CallSession | None) -> None:
    problems = summary.problems
    if session is None:
        problems.append("the media host never had this call")
        return
    assistant = " ".join(t.text for t in session.turns if t.role == "assistant").lower()
    if "booked" not in assistant:
        problems.append("the assistant never confirmed a booking")
    if summary.tools.get("end_call") != 1:
        problems.append(f"expected one end_call, got tools {summary.tools}")
    if summary.hang_up != "hung_up_by_app" or summary.media_host_end_reason != "assistant_ended":
        problems.append(
            f"expected the assistant to hang up, got {summary.hang_up} / {summary.media_host_end_reason}"
        )
    if "CallDisconnected" not in summary.callbacks:
        problems.append("no CallDisconnected callback")


def main(out_dir: Path) -> int:
    return asyncio.run(run_demo(out_dir))
