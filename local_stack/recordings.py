"""Each call's files under the out directory: a stereo WAV (caller left, assistant right, as heard on
the emulated leg) and a JSON transcript with a summary.

`save_call` writes them (the demo's call, and every call of `make up`). `Recordings` saves every call
`make up` carries when it is over and finds them again by call_connection_id: `by_call` for the calls
saved so far, `await wait(call_connection_id)` for one still in progress (for a page that offers
them for download).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from common.telemetry import CallIds
from emulators.acs.emulator import EmulatedCall
from media_host.call_events import CallEnded, CallEvent

from .records import CallRecord, CallStats
from .stack import LocalStack
from .waiting import first_set

log = logging.getLogger(__name__)

LEG_END_TIMEOUT_S = 10.0  # how long a saved call waits for the emulator to end its side too


class RecordingLeg(Protocol):
    """A call's media as an emulator carried it, which can write what both sides heard."""

    @property
    def connected_at(self) -> float: ...  # monotonic time the media stream connected

    @property
    def sample_rate(self) -> int: ...

    def write_recording(self, path: Path, *, since: float | None = None) -> float: ...


@dataclass(frozen=True)
class SavedCall:
    call_connection_id: str  # "" when the media host never had the call
    transcript: Path  # JSON: {"summary": {...}, "turns": [...]}
    wav: Path | None  # None: no emulated leg carried the audio (a real ACS call): transcript only
    recording: str  # the WAV for a person: its path, length and layout ("" without one)


def save_call(
    record: CallRecord | None, leg: RecordingLeg | None, out_dir: Path, summary: Mapping[str, Any]
) -> SavedCall:
    """Write out_dir/call-<UTC time>-<call id>.wav (when there is a leg) and .json; the summary in the
    JSON gains `recording` and `transcript`."""
    call_id = record.ids.call_connection_id if record is not None else ""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    stem = f"call-{stamp}-{call_id[:8]}" if call_id else f"call-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    wav, recording = None, ""
    if leg is not None:
        wav = out_dir / f"{stem}.wav"
        seconds = leg.write_recording(wav, since=leg.connected_at)
        recording = (
            f"{wav} ({seconds:.1f} s, {leg.sample_rate / 1000:g} kHz stereo: caller left, assistant right)"
        )
    transcript = out_dir / f"{stem}.json"
    turns = [asdict(t) for t in record.turns] if record is not None else []
    content = {"summary": {**summary, "recording": recording, "transcript": str(transcript)}, "turns": turns}
    transcript.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return SavedCall(call_id, transcript, wav, recording)


class Recordings:
    """A call observer that saves every call of the stack when it is over, under `out_dir`.

    An emulated ACS call is saved once the emulator has ended its side too (or LEG_END_TIMEOUT_S after
    the media host's CallEnded), so the recording holds the last words; any other call (real ACS) gets
    its transcript only.
    """

    def __init__(
        self, stack: LocalStack, out_dir: Path, on_saved: Callable[[SavedCall], None] | None = None
    ) -> None:
        self.stack = stack
        self.out_dir = out_dir
        self.on_saved = on_saved
        self.by_call: dict[str, SavedCall] = {}  # by call_connection_id, as saved
        self._saved: dict[str, asyncio.Future[SavedCall]] = {}
        self._ending: set[str] = set()  # calls whose CallEnded came: saved, or being saved
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    def on_call_event(self, ids: CallIds, event: CallEvent) -> None:
        call_id = ids.call_connection_id
        if not isinstance(event, CallEnded) or call_id in self._ending:
            return
        self._ending.add(call_id)
        task = asyncio.create_task(self._save(call_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, call_connection_id: str) -> SavedCall:
        """The call's files, once the call is over and they are written (a call that never ends never
        has them: give it a timeout)."""
        return await asyncio.shield(self._future(call_connection_id))

    async def close(self) -> None:
        """Save the calls still ending now, without waiting any longer for their emulated side."""
        self._closing.set()
        await asyncio.gather(*self._tasks)

    def _future(self, call_id: str) -> asyncio.Future[SavedCall]:
        if call_id not in self._saved:
            self._saved[call_id] = asyncio.get_running_loop().create_future()
        return self._saved[call_id]

    def _emulated(self, call_id: str) -> EmulatedCall | None:
        if self.stack.real_acs or self.stack.provider != "acs":
            return None
        return next((c for c in self.stack.emulator.calls if c.call_connection_id == call_id), None)

    async def _save(self, call_id: str) -> None:
        emulated = self._emulated(call_id)
        if emulated is not None:
            await first_set(emulated.ended, self._closing, timeout=LEG_END_TIMEOUT_S)
        stats = CallStats()
        record = self.stack.record(call_id)
        if record is not None:
            stats.sum_up(record)
        summary = {
            "call_connection_id": call_id,
            "correlation_id": record.ids.correlation_id if record is not None else "",
            "direction": emulated.direction if emulated is not None else None,
            "network_end_reason": emulated.end_reason if emulated is not None else None,
            **asdict(stats),
        }
        future = self._future(call_id)
        try:
            saved = save_call(record, emulated.leg if emulated is not None else None, self.out_dir, summary)
        except OSError as exc:
            log.exception("call %s could not be saved under %s", call_id, self.out_dir)
            future.set_exception(exc)
            return
        if emulated is not None and emulated.leg is not None:
            emulated.leg.drop_audio()  # it is in the files now: a long `make up` must not keep every call's
        self.by_call[call_id] = saved
        future.set_result(saved)
        if self.on_saved is not None:
            self.on_saved(saved)
