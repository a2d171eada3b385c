"""`make demo`: one complete simulated inbound PSTN call through the whole stack.

ACS (the default): emulator → Event Grid → function → answer_call → /ws/media → media host → model
→ audio back → the assistant books a table and ends the call with end_call → hang-up → CallDisconnected.
Twilio (`PROVIDER=twilio`): emulator → signed voice webhook → function → TwiML `<Connect><Stream>`
→ /ws/twilio → media host → model → audio back → … end_call → REST `Status=completed` → stream-stopped.
The same caller plays the same lines either way. It prints the conversation as it happens and a
summary, writes a stereo recording (caller left, assistant right) and a JSON transcript under out/,
and exits non-zero if the call went wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from emulators.caller import AssistantSilent, CallerLeg, CallerLine, Heard, converse, script

from .failures import start_cleanly
from .recordings import RecordingLeg, save_call
from .records import CallRecord, CallStats
from .stack import LocalStack, Provider

CALLER_NUMBER = "+14255550123"
CALL_TIMEOUT_S = 120.0
SILENT_BEFORE = 2  # the caller goes quiet before its third line: the assistant asks again


class RecordedLeg(CallerLeg, RecordingLeg, Protocol):
    def heard(self) -> Sequence[Heard]: ...


@dataclass
class PlacedCall:
    """A call as the demo follows it, whichever network carries it."""

    network: Provider
    announced_at: float  # monotonic: time zero of the printout
    answered_at: float | None
    answered_by: str  # how the product answered it, as printed
    leg: RecordedLeg | None  # None: no media stream (see `problem`)
    problem: str
    media_call_id: str  # the media host's call_connection_id for it
    ended: asyncio.Event
    end_reason: Callable[[], str | None]  # the network's, once it is over
    callbacks: Callable[[], list[str]]  # what the network reported to the product, in order
    hang_up: str  # the network's end reason when the assistant hangs up
    last_callback: str  # the callback that says the call is over


@dataclass
class Summary(CallStats):
    provider: str = ""
    answered_ms: int | None = None
    first_assistant_audio_ms: int | None = None
    hang_up: str | None = None
    callbacks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Printer:
    """Prints each turn as the media host records it, with its time into the call."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.printed = 0

    def line(self, who: str, text: str, at: float | None = None) -> None:
        at_ms = int(((at or time.monotonic()) - self.started) * 1000)
        print(f"  {at_ms / 1000:7.2f}s  {who:<9} {text}", flush=True)

    def new_turns(self, record: CallRecord | None) -> None:
        if record is None:
            return
        for turn in record.turns[self.printed :]:
            who = "caller" if turn.role == "caller" else "assistant"
            text = turn.text + (" [interrupted]" if turn.interrupted else "")
            self.line(who, text, record.started_at + turn.at_ms / 1000)
        self.printed = len(record.turns)


async def run_demo(out_dir: Path, provider: Provider) -> int:
    stack = LocalStack(provider=provider)
    await start_cleanly(stack)
    network = (
        f"Twilio emulator {stack.twilio.rest.base_url}"
        if provider == "twilio"
        else f"ACS emulator {stack.emulator.rest.endpoint}"
    )
    print(f"local stack up: gateway {stack.gateway_url}, model {stack.model_url}, {network}")
    try:
        return await _one_call(stack, out_dir)
    finally:
        await stack.close()


async def place_acs_call(stack: LocalStack) -> PlacedCall:
    call = await stack.emulator.incoming_call(
        stack.incoming_call_url, caller=CALLER_NUMBER, callee=stack.number
    )
    async with asyncio.timeout(15):
        await call.media_ready.wait()
    return PlacedCall(
        network="acs",
        announced_at=call.announced_at,
        answered_at=call.answered_at,
        answered_by="CallConnected",
        leg=call.leg,
        problem=f"callbacks were {call.callback_types()}",
        media_call_id=call.call_connection_id or "",
        ended=call.ended,
        end_reason=lambda: call.end_reason,
        callbacks=call.callback_types,
        hang_up="hung_up_by_app",
        last_callback="CallDisconnected",
    )


async def place_twilio_call(stack: LocalStack) -> PlacedCall:
    announced_at = time.monotonic()
    call = await stack.twilio.place_call(stack.twilio_voice_url, from_=CALLER_NUMBER, to=stack.number)
    stream = call.stream if call.stream is not None and call.stream.connected_at else None
    return PlacedCall(
        network="twilio",
        announced_at=announced_at,
        answered_at=None
        if call.answered is None
        else announced_at + (call.answered - call.created).total_seconds(),
        answered_by="TwiML <Connect><Stream>",
        leg=stream,
        problem=f"Twilio logged {call.errors}; the TwiML was {call.twiml}",
        media_call_id="" if stream is None else stream.stream_sid,  # the media host's call_connection_id
        ended=call.ended,
        end_reason=lambda: call.end_reason,
        callbacks=lambda: [c.event for c in call.stream_callbacks],
        hang_up="completed_by_api",  # end_call: the media host's REST update, Status=completed
        last_callback="stream-stopped",
    )


async def _one_call(stack: LocalStack, out_dir: Path) -> int:
    summary = Summary(provider=stack.provider)
    print(f"\ncalling {CALLER_NUMBER} -> {stack.number} ...")
    place = place_twilio_call if stack.provider == "twilio" else place_acs_call
    call = await place(stack)
    printer = Printer(call.announced_at)
    if call.answered_at is not None:
        summary.answered_ms = int((call.answered_at - call.announced_at) * 1000)
        printer.line(
            call.network, f"answered ({call.answered_by}) in {summary.answered_ms} ms", call.answered_at
        )
    leg = call.leg
    if leg is None:
        summary.problems.append(f"no media stream: {call.problem}")
        return _finish(summary, call, None, out_dir)
    printer.line(call.network, f"media stream connected ({leg.sample_rate} Hz)", leg.connected_at)

    async def follow() -> None:
        while not call.ended.is_set():
            printer.new_turns(stack.record(call.media_call_id))
            await asyncio.sleep(0.1)

    follower = asyncio.create_task(follow())
    lines = script()

    def said(line: CallerLine) -> None:
        printer.line("(caller)", f"plays {line.file}: \u201c{line.text}\u201d")

    def silent() -> None:
        printer.line("(caller)", "says nothing (the assistant should ask again after NO_INPUT_SECONDS)")

    try:
        async with asyncio.timeout(CALL_TIMEOUT_S):
            await converse(leg, lines, on_line=said, silent_before=SILENT_BEFORE, on_silence=silent)
            await call.ended.wait()
    except AssistantSilent as exc:
        summary.problems.append(str(exc))
    except TimeoutError:
        summary.problems.append(f"the call did not end within {CALL_TIMEOUT_S:.0f} s")
    finally:
        await asyncio.sleep(0.2)
        follower.cancel()
        record = stack.record(call.media_call_id)
        printer.new_turns(record)
    heard = leg.heard()
    if heard:
        summary.first_assistant_audio_ms = int((heard[0].start - leg.connected_at) * 1000)
    return _finish(summary, call, record, out_dir)


def _finish(summary: Summary, call: PlacedCall, record: CallRecord | None, out_dir: Path) -> int:
    summary.hang_up = call.end_reason()
    summary.callbacks = call.callbacks()
    if record is not None:
        summary.sum_up(record)
    _check(summary, call, record)
    saved = save_call(record, call.leg, out_dir, asdict(summary))

    print("\nsummary")
    print(f"  answered in             {summary.answered_ms} ms")
    print(f"  first assistant audio   {summary.first_assistant_audio_ms} ms after the media stream connected")
    print(f"  turns                   {summary.caller_turns} caller, {summary.assistant_turns} assistant")
    print(f"  barge-ins               {summary.barge_ins}")
    print(f"  reprompts               {summary.reprompts} (the caller said nothing for NO_INPUT_SECONDS)")
    latencies = ", ".join(f"{ms}" for ms in summary.turn_latency_ms) or "none"
    print(f"  turn latency            {latencies} ms (caller stops speaking -> answer audio starts)")
    print(f"  tools                   {summary.tools or 'none'}")
    print(f"  hang-up                 {summary.hang_up} (media host: {summary.media_host_end_reason})")
    print(f"  callbacks               {', '.join(summary.callbacks)}")
    print(f"  recording               {saved.recording or 'none'}")
    print(f"  transcript              {saved.transcript}")
    if summary.problems:
        print("\nTHE CALL DID NOT GO AS EXPECTED:\n  - " + "\n  - ".join(summary.problems))
        return 1
    print("\nok: the table is booked and the assistant ended the call")
    return 0


def _check(summary: Summary, call: PlacedCall, record: CallRecord | None) -> None:
    problems = summary.problems
    if record is None:
        problems.append("the media host never had this call")
        return
    assistant = " ".join(t.text for t in record.turns if t.role == "assistant").lower()
    if "booked" not in assistant:
        problems.append("the assistant never confirmed a booking")
    if summary.reprompts != 1:
        problems.append(f"expected one reprompt after the caller's silence, got {summary.reprompts}")
    if summary.tools.get("end_call") != 1:
        problems.append(f"expected one end_call, got tools {summary.tools}")
    if summary.hang_up != call.hang_up or summary.media_host_end_reason != "assistant_ended":
        problems.append(
            f"expected the assistant to hang up, got {summary.hang_up} / {summary.media_host_end_reason}"
        )
    if call.last_callback not in summary.callbacks:
        problems.append(f"no {call.last_callback} callback")


def main(out_dir: Path, provider: Provider = "acs") -> int:
    return asyncio.run(run_demo(out_dir, provider))
