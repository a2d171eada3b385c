"""What happens in a call, as the call core tells it to whoever observes: the audit trail
(`AuditTrail`, Application Insights), and e.g. the local stack's transcript and summary. Observers
are told; nobody reads the core's state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from common.telemetry import CallIds, Telemetry

ENDED_BY = {  # end reason -> who ended the call, for the audit trail
    "assistant_ended": "assistant",
    "transferred": "assistant",
    "acs_closed": "caller_or_acs",
    "max_call_seconds": "media_host",
    "no_input": "media_host",
    "drain_timeout": "platform",
    "shutdown": "platform",
}


@dataclass(frozen=True)
class Turn:
    role: Literal["caller", "assistant"]
    text: str
    item_id: str
    at_ms: int  # since the media socket was accepted
    interrupted: bool = False


@dataclass(frozen=True)
class MediaConnected:
    profile: str


@dataclass(frozen=True)
class TurnTaken:
    turn: Turn


@dataclass(frozen=True)
class AssistantAudioStarted:
    """The first frame of an assistant item went to the caller: the latencies a caller feels."""

    item_id: str
    first_audio_ms: float | None  # media connected -> the call's first assistant audio (first item only)
    turn_latency_ms: float | None  # end of the caller's speech -> this answer (None: not an answer)


@dataclass(frozen=True)
class BargedIn:
    reaction_ms: float  # caller speech detected -> playback stopped
    audio_end_ms: int  # how much of the answer the caller had heard


@dataclass(frozen=True)
class ToolUsed:
    name: str
    outcome: str  # ok, error, timeout, unknown_tool, invalid_arguments
    duration_ms: float


@dataclass(frozen=True)
class AssistantPrompted:
    """The call core asked the assistant to speak on its own initiative."""

    why: Literal["no_input", "no_input_goodbye", "tool_filler", "ending_soon", "time_up_goodbye"]
    count: int = 1  # no_input: the n-th reprompt in a row
    tool: str = ""  # tool_filler: the tool that was taking a while


@dataclass(frozen=True)
class KeypadEntry:
    """Keys the caller pressed went to the model as one input. How many, never which."""

    keys: int


@dataclass(frozen=True)
class CallEnded:
    why: str
    duration_s: float
    turns: int
    barge_ins: int
    underruns: int
    reconnects: int
    tools: dict[str, int]
    counts: dict[str, object] = field(default_factory=dict)  # what was dropped or measured, by name

    @property
    def who(self) -> str:
        return ENDED_BY.get(self.why, "media_host")


CallEvent = (
    MediaConnected | TurnTaken | AssistantAudioStarted | BargedIn | ToolUsed | AssistantPrompted | KeypadEntry
    | CallEnded
)  # fmt: skip


class CallObserver(Protocol):
    def on_call_event(self, ids: CallIds, event: CallEvent) -> None: ...


class AuditTrail:
    """The call's events as Application Insights records (docs/auditors.md)."""

    def __init__(self, telemetry: Telemetry) -> None:
        self._t = telemetry

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        t = self._t
        if isinstance(event, MediaConnected):
            t.event("MediaConnected", ids, profile=event.profile)
        elif isinstance(event, TurnTaken):
            t.transcript(ids, event.turn.role, event.turn.text)
        elif isinstance(event, AssistantAudioStarted):
            if event.first_audio_ms is not None:
                t.metric("first_assistant_audio_ms", event.first_audio_ms, ids)
            if event.turn_latency_ms is not None:
                t.metric("turn_latency_ms", event.turn_latency_ms, ids, item_id=event.item_id)
        elif isinstance(event, BargedIn):
            t.metric("barge_in_reaction_ms", event.reaction_ms, ids)
            t.event("BargeIn", ids, measurements={"reaction_ms": round(event.reaction_ms, 2)},
                    audio_end_ms=event.audio_end_ms)  # fmt: skip
        elif isinstance(event, ToolUsed):
            t.event("ToolCalled", ids, measurements={"duration_ms": round(event.duration_ms, 2)},
                    tool=event.name, outcome=event.outcome)  # fmt: skip
        elif isinstance(event, AssistantPrompted):
            t.event("AssistantPrompted", ids, why=event.why, count=event.count, tool=event.tool)
        elif isinstance(event, KeypadEntry):
            t.event("KeypadEntry", ids, keys=event.keys)
        elif isinstance(event, CallEnded):
            t.metric("outbound_underruns", event.underruns, ids)
            # the last of the call's records here (its GET request record follows), saying how many there were
            t.event("CallEnded", ids, measurements={"duration_s": event.duration_s}, who=event.who,
                    why=event.why, turns=event.turns, barge_ins=event.barge_ins, underruns=event.underruns,
                    reconnects=event.reconnects, records=t.records_of(ids), **event.counts)  # fmt: skip
