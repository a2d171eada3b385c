"""The local stack's record of each call, kept as the media host tells it (`media_host.call_events`):
what the demo prints and sums up, and what the end-to-end tests check."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.telemetry import CallIds
from media_host.call_events import (
    AssistantAudioStarted,
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
        elif isinstance(event, CallEnded):
            record.ended = event
