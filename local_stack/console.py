"""What a person at `make up`'s console sees of each call, as it happens: a call observer.

14:02:11 5c3e0a1f connected (profile restaurant)
14:02:13 5c3e0a1f assistant: Hello, thanks for calling ...
14:02:19 5c3e0a1f caller: I'd like to book a table
14:02:40 5c3e0a1f ended: assistant_ended (by assistant) after 29.1 s, 6 turns
14:02:40 5c3e0a1f saved out/call-....wav (29.1 s, 24 kHz stereo: ...) and out/call-....json
"""

from __future__ import annotations

from datetime import datetime

from common.telemetry import CallIds
from media_host.call_events import CallEnded, CallEvent, MediaConnected, TurnTaken

from .recordings import SavedCall

SHORT_ID = 8  # characters of the call_connection_id that tell calls apart on the console


class Console:
    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        if isinstance(event, MediaConnected):
            self._line(
                ids.call_connection_id, "connected" + (f" (profile {event.profile})" if event.profile else "")
            )
        elif isinstance(event, TurnTaken):
            turn = event.turn
            self._line(
                ids.call_connection_id,
                f"{turn.role}: {turn.text}" + (" [interrupted]" if turn.interrupted else ""),
            )
        elif isinstance(event, CallEnded):
            self._line(
                ids.call_connection_id,
                f"ended: {event.why} (by {event.who}) after {event.duration_s:.1f} s, "
                f"{event.turns} turn{'' if event.turns == 1 else 's'}",
            )

    def saved(self, saved: SavedCall) -> None:
        if saved.wav is not None:
            self._line(saved.call_connection_id, f"saved {saved.recording} and {saved.transcript}")
        else:
            self._line(
                saved.call_connection_id,
                f"saved {saved.transcript} (transcript only: ACS carried the audio, not this machine)",
            )

    def _line(self, call_id: str, text: str) -> None:
        print(f"{datetime.now():%H:%M:%S} {call_id[:SHORT_ID]} {text}", flush=True)
