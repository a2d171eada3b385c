"""The local stack's record of each call, kept as the media host tells it (`media_host.call_events`):
what the demo prints and sums up, and what the end-to-end tests check."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.telemetry import CallIds
from media_host.call_events import (
    AssistantAudioStarted,
    AssistantPrompted,
    BargedIn,
    CallEnded,
    CallEvent,
    MediaConnected,
    Turn,
    TurnTaken,
)


@dataclass
class CallRecord:
    ids: CallIds
    started_at: float = field(default_factory=time.monotonic)  # when the media stream connected
    turns: list[Turn] = field(default_factory=list)
    barge_ins: list[float] = field(default_factory=list)  # monotonic times the caller's speech was detected
    turn_latency_ms: list[float] = field(default_factory=list)  # caller stops speaking -> the answer starts
    first_audio_ms: float | None = None  # media connected -> the first assistant audio
    prompted: list[AssistantPrompted] = field(default_factory=list)  # the assistant spoke unasked
    ended: CallEnded | None = None


class CallRecords:
    """A call observer: one record per call, by the call_connection_id (ACS's; a Twilio StreamSid)."""

    def __init__(self) -> None:
        self.by_call: dict[str, CallRecord] = {}

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        now = time.monotonic()
        record = self.by_call.setdefault(ids.call_connection_id, CallRecord(ids))
        if isinstance(event, MediaConnected):
            record.started_at = now
        elif isinstance(event, TurnTaken):
            record.turns.append(event.turn)
        elif isinstance(event, BargedIn):
            record.barge_ins.append(now - event.reaction_ms / 1000)
        elif isinstance(event, AssistantAudioStarted):
            if event.first_audio_ms is not None:
                record.first_audio_ms = event.first_audio_ms
            if event.turn_latency_ms is not None:
                record.turn_latency_ms.append(event.turn_latency_ms)
        elif isinstance(event, AssistantPrompted):
            record.prompted.append(event)
        elif isinstance(event, CallEnded):
            record.ended = event


@dataclass
class CallStats:
    """A call's record summed up: in the demo's summary and in every transcript `make up` saves."""

    caller_turns: int = 0
    assistant_turns: int = 0
    barge_ins: int = 0
    reprompts: int = 0  # the caller said nothing for NO_INPUT_SECONDS: the assistant asked again
    turn_latency_ms: list[int] = field(default_factory=list)  # caller stops speaking -> answer starts
    media_host_end_reason: str | None = None
    duration_s: float | None = None
    tools: dict[str, int] = field(default_factory=dict)

    def sum_up(self, record: CallRecord) -> None:
        self.caller_turns = sum(t.role == "caller" for t in record.turns)
        self.assistant_turns = sum(t.role == "assistant" for t in record.turns)
        self.barge_ins = len(record.barge_ins)
        self.reprompts = sum(p.why == "no_input" for p in record.prompted)
        self.turn_latency_ms = [round(ms) for ms in record.turn_latency_ms]
        if record.ended is not None:
            self.media_host_end_reason = record.ended.why
            self.duration_s = record.ended.duration_s
            self.tools = dict(record.ended.tools)
