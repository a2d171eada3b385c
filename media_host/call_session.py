"""One call: the core that decides, between a telephony leg and the realtime model session.

The leg (`leg.py`: ACS or Twilio) owns the caller's socket, its wire format, pacing and hang-up; the
model session (`model_session`) owns the model's socket, reconnects and what is sent to it. This class
only decides what happens on each event (barge-in, tools, turns, ending) and owns the call's tasks,
so when either side closes, everything of the call is closed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from common.profiles import Profile
from common.telemetry import CallIds, Telemetry

from . import realtime_protocol as rt
from .audio_paths import LegAudio, ToModel
from .call_events import (
    AssistantAudioStarted,
    AssistantPrompted,
    BargedIn,
    CallEnded,
    CallEvent,
    CallObserver,
    KeypadEntry,
    MediaConnected,
    ToolUsed,
    Turn,
    TurnTaken,
)
from .leg import Leg, count_bounded
from .manners import KeyCollector, NoInputWatch
from .model_link import ModelConnector
from .model_session import ModelSession
from .phrases import PHRASES
from .playback import Playback
from .settings import MediaSettings
from .tools import Tool, ToolContext, ToolResult, tool_schema

log = logging.getLogger(__name__)

INTERRUPTED = " [cut off: the caller interrupted]"  # how an interrupted answer is restored to a new session
SPEECH_WAIT_TIMEOUT_S = 15.0  # inside TOOL_TIMEOUT_SECONDS' default, so a tool still gets to act
GOODBYE_TIMEOUT_S = 15.0  # a goodbye the core asked for is heard, or the call ends anyway
TOOL_CANCELLED = json.dumps({"error": "cancelled: the caller spoke or pressed a key before it finished"})
BENIGN_MODEL_ERRORS = {"response_cancel_not_active"}  # our cancel raced the server's own VAD cancel


@dataclass
class CallStats:
    model_malformed: Counter[str] = field(default_factory=Counter)  # model events dropped, by reason
    model_errors: Counter[str] = field(default_factory=Counter)
    barge_ins: list[float] = field(default_factory=list)  # monotonic times the caller's speech was detected
    late_deltas_dropped: int = 0
    tool_calls: Counter[str] = field(default_factory=Counter)
    dtmf_at_ms: list[int] = field(default_factory=list)  # when the caller pressed keys (never which ones)
    first_audio_ms: float | None = None  # media connected -> first assistant frame sent to ACS
    turn_latency_ms: list[float] = field(default_factory=list)  # end of caller speech -> first answer frame


class CallSession:
    def __init__(
        self,
        *,
        leg: Callable[[CallSession], Leg],  # the leg, built with this call as its handler
        ids: CallIds,
        profile_name: str | None,  # None: the default instructions
        profile: Profile,
        voice: str,  # the model's voice for this call
        settings: MediaSettings,
        connector: ModelConnector,
        tools: list[Tool],
        observers: Sequence[CallObserver],  # told what happens: the audit trail, a transcript, ...
        audio_format: rt.AudioFormat = "pcm24",  # what the model hears and speaks
        telemetry: Telemetry,
    ) -> None:
        self.ids = ids
        self.profile_name = profile_name
        self.phrases = PHRASES[profile.language]
        self.settings = settings
        self.telemetry = telemetry
        self._observers = list(observers)
        self._tools = {tool.name: tool for tool in tools}
        self.started_at = time.monotonic()
        self.leg = leg(self)
        self._tool_ctx = ToolContext(ids, self.leg, settings, telemetry, self._speech_finished, self._ending)
        self.turns: list[Turn] = []
        self.stats = CallStats()
        self.end_reason: str | None = None
        self.to_model = ToModel(
            audio_format, self.leg.audio, settings.soxr_quality, append_ms=settings.model_append_ms
        )
        m = settings.model
        self.model = ModelSession(
            connector=connector,
            ids=ids,
            telemetry=telemetry,
            config=rt.SessionConfig(
                instructions=profile.instructions,
                voice=voice,
                transcription_model=m.transcription_model,
                vad_threshold=m.vad_threshold,
                vad_silence_ms=m.vad_silence_ms,
                vad_prefix_ms=m.vad_prefix_ms,
                tools=[tool_schema(t) for t in tools],
                audio_format=audio_format,
            ),
            started={
                "deployment": m.deployment,
                "voice": voice,
                "auth_mode": connector.auth_mode,
                "profile": profile_name or "default",
            },
            max_buffered_events=int(settings.max_buffered_seconds * 1000 / settings.model_append_ms),
            handler=self,
            greet=profile.greeting == "first",
            session_max_seconds=m.session_max_seconds,
        )
        self._greet_first = profile.greeting == "first"
        self._no_input = NoInputWatch(
            settings.no_input_seconds, played=self.leg.wait_played, on_silence=self._on_silence
        )
        self._keys = KeyCollector(
            gap_s=settings.dtmf_gap_ms / 1000, terminator=settings.dtmf_terminator, on_keys=self._on_keys
        )
        self._tools_running: dict[str, asyncio.Task[tuple[ToolResult, str]]] = {}  # by call id
        self._filler_said = False  # once per call
        self._saying_goodbye = False  # the core is ending the call: no more reprompts
        self._caller_speaking = False  # between the model's speech_started and speech_stopped
        self._caller_stopped_at: float | None = None  # end of the caller's last turn, until the answer starts
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        log.info("call media connected", extra=self._dims())
        self._tell(MediaConnected(self.profile_name or "default"))
        self._spawn(self.model.run(), "model")
        self._spawn(self.playback.run(), "playback")
        self._spawn(self._call_clock(), "call-clock")
        if not self._greet_first:
            self._no_input.arm()  # the caller speaks first: their silence counts from now
        hang_up: str | None = None  # why this handler ends the call for everyone, if it does
        try:  # the call clock says goodbye at MAX_CALL_SECONDS; this is the backstop
            async with asyncio.timeout(self.settings.max_call_seconds + GOODBYE_TIMEOUT_S + 5):
                hang_up = await self.leg.run()
        except TimeoutError:
            hang_up = "max_call_seconds"
        except Exception:  # a bug must not leave the caller on a silent line
            log.exception("call failed", extra=self._dims())
            hang_up = "internal_error"
        finally:
            # the host may cancel this handler when ACS drops the connection: cleanup (and the
            # hang-up, which must reach ACS whatever happens to the socket) must still finish
            cleanup = asyncio.ensure_future(self._close(hang_up))
            try:
                await asyncio.shield(cleanup)
            except asyncio.CancelledError:
                await cleanup
                raise

    async def shutdown(self, reason: str) -> None:
        """Close from outside (drain deadline): hang up, so the caller is not left on a silent line,
        then close the ACS socket with "going away"; `run` finishes the rest."""
        self.end_reason = self.end_reason or reason
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.leg.hang_up()
        await self.leg.close(going_away=reason)

    async def _end_call(self, reason: str) -> None:
        """Hang up for everyone, then close our socket (ACS would close it anyway)."""
        self.end_reason = self.end_reason or reason
        await self.leg.hang_up()
        await self.leg.close()

    async def _close(self, hang_up: str | None) -> None:
        if hang_up is not None:
            self.end_reason = self.end_reason or hang_up
            await self.leg.hang_up()
        self.end_reason = self.end_reason or "acs_closed"  # nobody ended it here: the caller's side did
        self._closing = True
        self._keys.close()
        await self._no_input.close()
        tasks = [*self._tasks, *self._tools_running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.leg.closed:
            await self.leg.close()
        log.info(
            "call ended: %s after %d ms; %d turns, %d barge-ins, %d underruns, %d reconnects; dropped: "
            "malformed ACS %s, unknown ACS kinds %s, malformed model events %s",
            self.end_reason,
            self.elapsed_ms,
            len(self.turns),
            len(self.stats.barge_ins),
            self.playback.stats.underruns,
            self.model.reconnects,
            dict(self.leg.malformed) or "none",
            dict(self.leg.unknown_kinds) or "none",
            dict(self.stats.model_malformed) or "none",
            extra=self._dims(),
        )
        self._record_end()  # last: CallEnded counts the call's records before it

    def _record_end(self) -> None:
        playback = self.playback.stats
        self._tell(
            CallEnded(
                why=self.end_reason or "unknown",
                duration_s=round(self.elapsed_ms / 1000, 3),
                turns=len(self.turns),
                barge_ins=len(self.stats.barge_ins),
                underruns=playback.underruns,
                reconnects=self.model.reconnects,
                tools=dict(self.stats.tool_calls),
                counts={
                    "malformed": dict(self.leg.malformed),
                    "unknown_kinds": dict(self.leg.unknown_kinds),
                    "model_malformed": dict(self.stats.model_malformed),
                    "model_errors": dict(self.stats.model_errors),
                    "dtmf_tones": len(self.stats.dtmf_at_ms),
                    "caller_audio_dropped": self.model.audio_dropped,  # the model was away longer than the buffer
                    "assistant_audio_dropped": playback.overflow_dropped,
                    "late_deltas_dropped": self.stats.late_deltas_dropped,
                    "max_queue_depth": playback.max_queue_depth,
                },
            )
        )

    def _tell(self, event: CallEvent) -> None:
        for observer in self._observers:
            try:
                observer.on_call_event(self.ids, event)
            except Exception:  # an observer's bug must not end the call
                log.exception("call observer %r failed", observer, extra=self._dims())

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{name}:{self.ids.call_connection_id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("call task %s failed", task.get_name(), exc_info=task.exception(), extra=self._dims())
            if not self._closing:  # a bug must not leave the caller in silence
                self._spawn(self._end_call("internal_error"), "end")

    def _dims(self) -> dict[str, str]:
        return self.ids.dims()

    # -- the caller's side (the leg has read and checked it) ---------------------------------
    @property
    def playback(self) -> Playback:
        return self.leg.playback

    def on_caller_audio(self, audio: bytes, fmt: LegAudio) -> None:
        if fmt is not self.to_model.leg:  # per frame: identity is enough, a leg changes format by a new one
            self.to_model.set_leg(fmt)
        self.model.append_audio(self.to_model.events(audio))

    def on_dtmf(self, tone: str) -> None:
        # keys are PINs and card numbers: they go to the model, and logs and telemetry get when and how many
        self.stats.dtmf_at_ms.append(self.elapsed_ms)
        self._caller_acted()
        # a key cuts the assistant short, as speech does
        if self.leg.playing or self.model.speaking is not None:
            self._spawn(self._barge_in(), "barge-in")
        self._keys.press(tone)

    def _on_keys(self, keys: str) -> None:
        """Keys pressed in a row: one input of the caller's, and an answer to it."""
        self.model.send(rt.message_item("user", self.phrases.keys.format(keys=" ".join(keys))))
        self.model.request_response()
        self._tell(KeypadEntry(len(keys)))
        log.info("keypad entry of %d keys sent to the model", len(keys), extra=self._dims())

    def _caller_acted(self) -> None:
        """The caller spoke or pressed a key: not silent, and a running tool's answer is moot."""
        self._no_input.heard()
        for call_id, task in list(self._tools_running.items()):
            del self._tools_running[call_id]  # whatever it returns now is not acted upon
            task.cancel()
            self.model.send(rt.function_output(call_id, TOOL_CANCELLED))

    # -- model side (media_host.model_session keeps the connection; here, what its events mean) --
    def on_malformed(self, reason: str) -> None:
        if not self.stats.model_malformed[reason]:  # log once per reason, count always
            log.warning("dropping malformed model event: %s", reason, extra=self._dims())
        self.stats.model_malformed[reason] += 1

    def conversation(self) -> list[tuple[str, str]]:
        return [
            ("user" if t.role == "caller" else "assistant", t.text + (INTERRUPTED if t.interrupted else ""))
            for t in self.turns
            if t.text
        ]

    def quiet(self) -> bool:
        return not self._caller_speaking and not self._tools_running and not self.leg.playing

    async def model_failed(self, reason: str) -> None:
        await self._end_call(reason)

    async def on_model_event(self, event: rt.ServerEvent) -> None:
        if isinstance(event, rt.ResponseCreated):
            self._no_input.disarm()  # the assistant has more to say: silence counts after it
        elif isinstance(event, rt.AudioDelta):
            if self.model.cancelled(event.response_id):
                self.stats.late_deltas_dropped += 1
            else:
                self.leg.play(event.response_id, event.item_id, event.pcm)
        elif isinstance(event, rt.AudioDone):
            if not self.model.cancelled(event.response_id):
                self.leg.finish_item(event.response_id, event.item_id)
        elif isinstance(event, rt.SpeechStarted):
            self._caller_speaking = True
            self._caller_acted()
            await self._barge_in()
        elif isinstance(event, rt.ResponseDone):
            if event.status == "failed":
                log.warning("model response failed: %s", event.reason, extra=self._dims())
            if not self.model.busy and not self._tools_running and not self._saying_goodbye:
                self._no_input.arm()  # the assistant has said its piece: the caller's turn
        elif isinstance(event, rt.FunctionCall):
            self.stats.tool_calls[event.name] += 1
            self._spawn(self._run_tool(event), f"tool-{event.name}")
        elif isinstance(event, rt.SpeechStopped):
            self._caller_speaking = False
            # server VAD says so only after its silence window: the caller stopped talking that long ago
            self._caller_stopped_at = time.monotonic() - self.settings.model.vad_silence_ms / 1000
        elif isinstance(event, rt.CallerTranscript):
            self._turn(Turn("caller", event.text, event.item_id, self.elapsed_ms))
        elif isinstance(event, rt.AssistantTranscript):
            interrupted = self.model.cancelled(event.response_id)
            self._turn(Turn("assistant", event.text, event.item_id, self.elapsed_ms, interrupted))
        elif isinstance(event, rt.ServerError):
            first = count_bounded(self.stats.model_errors, event.code)  # each code logged once a call
            level = logging.WARNING if first and event.code not in BENIGN_MODEL_ERRORS else logging.DEBUG
            log.log(level, "model error %s: %s", event.code, event.message, extra=self._dims())

    def _turn(self, turn: Turn) -> None:
        self.turns.append(turn)
        self._tell(TurnTaken(turn))

    async def _barge_in(self) -> None:
        """Caller speech over the assistant: stop, drop, cancel, truncate — in that order."""
        detected = time.monotonic()
        speaking = self.model.speaking
        if not self.leg.playing and speaking is None:
            return
        self.stats.barge_ins.append(detected)
        interrupted = await self.leg.clear()
        reaction_ms = (time.monotonic() - detected) * 1000
        if speaking is not None:
            speaking.interrupt()
        if interrupted is not None:
            self.model.cancel(interrupted.response_id)
            self.model.send(rt.truncate(interrupted.item_id, interrupted.audio_end_ms))
        audio_end_ms = interrupted.audio_end_ms if interrupted else 0
        self._tell(BargedIn(reaction_ms, audio_end_ms))
        log.info("barge-in: stopped assistant audio at %s ms", audio_end_ms, extra=self._dims())

    def on_audio_started(self, item_id: str, at: float) -> None:
        """The first frame of an assistant item went to the caller: the latencies a caller feels."""
        first = None
        if self.stats.first_audio_ms is None:
            first = self.stats.first_audio_ms = (at - self.started_at) * 1000
        latency = None
        if self._caller_stopped_at is not None:
            latency = (at - self._caller_stopped_at) * 1000
            self.stats.turn_latency_ms.append(latency)
            self._caller_stopped_at = None
        if first is not None or latency is not None:
            self._tell(AssistantAudioStarted(item_id, first, latency))

    # -- tools --------------------------------------------------------------------------------
    async def _run_tool(self, call: rt.FunctionCall) -> None:
        started = time.monotonic()
        task = asyncio.create_task(
            self._call_tool(call), name=f"tool-{call.name}:{self.ids.call_connection_id}"
        )
        self._tools_running[call.call_id] = task
        self._no_input.disarm()
        try:
            filler_s = self.settings.tool_filler_ms / 1000
            if filler_s and not self._filler_said:
                done, _ = await asyncio.wait({task}, timeout=filler_s)
                if not done and not self._filler_said and call.call_id in self._tools_running:
                    self._filler_said = True  # once per call: a second "one moment" sounds like a machine
                    self.model.request_response(self.phrases.filler)
                    self._tell(AssistantPrompted("tool_filler", tool=call.name))
            result, outcome = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the call is closing
            result, outcome = ToolResult(TOOL_CANCELLED, respond=False), "cancelled"  # the caller moved on
        finally:
            cancelled = self._tools_running.pop(call.call_id, None) is None
        duration_ms = (time.monotonic() - started) * 1000
        if cancelled:  # the model was told when the caller moved on; a late result is not acted upon
            outcome = "cancelled"
        self._tell(ToolUsed(call.name, outcome, duration_ms))
        log.info("tool %s: %s in %d ms", call.name, outcome, duration_ms, extra=self._dims())
        if cancelled:
            return
        self.model.send(rt.function_output(call.call_id, result.output))
        if result.respond:
            self.model.request_response()
        if result.closes_call:
            await self.leg.close()  # the call is over; ACS would close the stream, we need not wait

    async def _call_tool(self, call: rt.FunctionCall) -> tuple[ToolResult, str]:
        """The result and its outcome. Failures become a result the model can talk about; they
        never reach the call loop."""
        tool = self._tools.get(call.name)
        if tool is None:
            return ToolResult(json.dumps({"error": f"unknown tool {call.name!r}"})), "unknown_tool"
        try:
            args = json.loads(call.arguments or "{}")
            if not isinstance(args, dict):
                raise ValueError("arguments must be a JSON object")
        except ValueError as exc:
            return ToolResult(json.dumps({"error": f"invalid arguments: {exc}"})), "invalid_arguments"
        try:
            async with asyncio.timeout(self.settings.tool_timeout_seconds):
                return await tool.run(args, self._tool_ctx), "ok"
        except TimeoutError:
            return ToolResult(json.dumps({"error": f"{call.name} timed out"})), "timeout"
        except Exception as exc:
            log.warning("tool %s failed: %s", call.name, exc, extra=self._dims())
            return ToolResult(
                json.dumps({"error": f"{call.name} failed: {type(exc).__name__}: {exc}"})
            ), "error"

    async def _speech_finished(self) -> None:
        """Until the assistant's current answer (e.g. its goodbye) has been said and played out."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SPEECH_WAIT_TIMEOUT_S):
                if (speaking := self.model.speaking) is not None:
                    await speaking.generated()
                await self.leg.wait_played()

    def _ending(self, reason: str) -> None:
        self.end_reason = self.end_reason or reason

    # -- phone manners: silence, the call's length --------------------------------------------
    async def _on_silence(self, silences: int) -> None:
        """The caller has said nothing for NO_INPUT_SECONDS since the assistant finished speaking."""
        reprompts = self.settings.no_input_reprompts
        log.info("caller silent (%d in a row)", silences, extra=self._dims())
        if silences <= reprompts:
            self.model.request_response(self.phrases.reprompt)
            self._tell(AssistantPrompted("no_input", count=silences))
        else:
            self._spawn(
                self._goodbye("no_input_goodbye", self.phrases.no_input_goodbye, "no_input"), "goodbye"
            )

    async def _call_clock(self) -> None:
        """A warning before MAX_CALL_SECONDS, and a goodbye at it rather than a silent hang-up."""
        limit, warning = self.settings.max_call_seconds, self.settings.max_call_warning_seconds
        if 0 < warning < limit:
            await asyncio.sleep(limit - warning)
            self.model.request_response(self.phrases.ending_soon)
            self._tell(AssistantPrompted("ending_soon"))
            await asyncio.sleep(warning)
        else:
            await asyncio.sleep(limit)
        await self._goodbye("time_up_goodbye", self.phrases.time_up_goodbye, "max_call_seconds")

    async def _goodbye(
        self, why: Literal["no_input_goodbye", "time_up_goodbye"], line: str, reason: str
    ) -> None:
        """Say goodbye (heard, within GOODBYE_TIMEOUT_S), then hang up for everyone."""
        self._saying_goodbye = True
        self._no_input.disarm()
        self.end_reason = self.end_reason or reason
        self._tell(AssistantPrompted(why))
        self.model.request_response(line)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_TIMEOUT_S):
                await (await self.model.next_speech()).generated()
                await self.leg.wait_played()
        await self._end_call(reason)
