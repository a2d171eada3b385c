"""One call: routes events between the ACS media socket and the realtime model socket.

The wire formats live in `acs_media` and `realtime_protocol`; audio conversion in `caller_audio`
and `playback`. This class only decides what happens on each event and owns the call's tasks, so
when either side closes, everything of the call is closed with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web
from azure.core.exceptions import ResourceNotFoundError

from common.telemetry import CallIds, Telemetry

from . import realtime_protocol as rt
from .acs_media import (
    STOP_AUDIO,
    AudioData,
    AudioMetadata,
    DtmfData,
    MalformedMessage,
    UnknownKind,
    parse_inbound,
)
from .call_control import CallControl
from .caller_audio import CallerAudio
from .model_link import ModelConnector, ModelSocket, ModelUnavailable
from .playback import Playback
from .settings import MediaSettings
from .tools import Tool, ToolContext, ToolResult, tool_schema

log = logging.getLogger(__name__)

MAX_RECONNECTS = 5
SESSION_READY_TIMEOUT_S = 10.0


class SessionRejected(Exception):
    """The model answered our session.update with an error."""


MAX_QUEUED_ASSISTANT_SECONDS = 120.0  # the model generates faster than real time; bound what waits (5.8 MB)
SPEECH_WAIT_TIMEOUT_S = 15.0  # inside TOOL_TIMEOUT_SECONDS' default, so a tool still gets to act
BENIGN_MODEL_ERRORS = {"response_cancel_not_active"}  # our cancel raced the server's own VAD cancel
_TRANSPORT_ERRORS: dict[int, str] = {  # close code of a socket the transport gave up on -> end reason
    aiohttp.WSCloseCode.MESSAGE_TOO_BIG: "acs_message_too_big",
    aiohttp.WSCloseCode.PROTOCOL_ERROR: "acs_protocol_error",
}
ENDED_BY = {  # end reason -> who ended the call, for the audit trail
    "assistant_ended": "assistant",
    "transferred": "assistant",
    "acs_closed": "caller_or_acs",
    "max_call_seconds": "media_host",
    "drain_timeout": "platform",
    "shutdown": "platform",
}


@dataclass
class Turn:
    role: Literal["caller", "assistant"]
    text: str
    item_id: str
    at_ms: int  # since the media socket was accepted
    interrupted: bool = False


MAX_DISTINCT_KEYS = (
    16  # the sender picks unknown kinds and error codes: past this many, they count as "other"
)


def count_bounded(counter: Counter[str], key: str) -> bool:
    """Count `key`; True the first time (of at most MAX_DISTINCT_KEYS + 1), so each can be logged once."""
    if key not in counter and len(counter) >= MAX_DISTINCT_KEYS:
        key = "other"
    counter[key] += 1
    return counter[key] == 1


@dataclass
class CallStats:
    malformed: Counter[str] = field(default_factory=Counter)  # ACS messages dropped, by reason
    unknown_kinds: Counter[str] = field(default_factory=Counter)
    model_malformed: Counter[str] = field(default_factory=Counter)  # model events dropped, by reason
    model_errors: Counter[str] = field(default_factory=Counter)
    barge_ins: list[float] = field(default_factory=list)  # monotonic times the caller's speech was detected
    late_deltas_dropped: int = 0
    reconnects: int = 0
    tool_calls: Counter[str] = field(default_factory=Counter)
    dtmf_at_ms: list[int] = field(default_factory=list)  # when the caller pressed keys (never which ones)
    first_audio_ms: float | None = None  # media connected -> first assistant frame sent to ACS
    turn_latency_ms: list[float] = field(default_factory=list)  # end of caller speech -> first answer frame


class CallSession:
    def __init__(
        self,
        *,
        ws: web.WebSocketResponse[Literal[False]],
        ids: CallIds,
        profile: str | None,
        instructions: str,
        settings: MediaSettings,
        connector: ModelConnector,
        control: CallControl,
        tools: list[Tool],
        telemetry: Telemetry,
    ) -> None:
        self.ws = ws
        self.ids = ids
        self.profile = profile
        self.instructions = instructions
        self.settings = settings
        self.telemetry = telemetry
        self._connector = connector
        self._control = control
        self._tools = {tool.name: tool for tool in tools}
        self._tool_ctx = ToolContext(ids, control, settings, telemetry, self._speech_finished, self._ending)
        self.started_at = time.monotonic()
        self._acs_heard_at = self.started_at
        self.turns: list[Turn] = []
        self.stats = CallStats()
        self.end_reason: str | None = None
        self.caller_audio = CallerAudio(
            call_rate=rt.MODEL_RATE,
            quality=settings.soxr_quality,
            max_buffered_seconds=settings.max_buffered_seconds,
        )
        self.playback = Playback(
            self._send_acs,
            call_rate=rt.MODEL_RATE,
            quality=settings.soxr_quality,
            lead_ms=settings.playback_lead_ms,
            max_queued_seconds=MAX_QUEUED_ASSISTANT_SECONDS,
            on_item_started=self._assistant_audio_started,
        )
        self._caller_stopped_at: float | None = None  # end of the caller's last turn, until the answer starts
        self._model: ModelSocket | None = None
        self._live_response: str | None = None
        self._response_idle = asyncio.Event()
        self._response_idle.set()
        self._response_wanted = False
        self._cancelled: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    @property
    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started_at) * 1000)

    # -- lifecycle ----------------------------------------------------------------------------
    async def run(self) -> None:
        log.info("call media connected", extra=self._dims())
        self.telemetry.event("MediaConnected", self.ids, profile=self.profile or "default")
        self._spawn(self._model_loop(), "model")
        self._spawn(self.playback.run(), "playback")
        self._spawn(self._watch_acs(), "watch-acs")
        hang_up: str | None = None  # why this handler ends the call for everyone, if it does
        try:
            async with asyncio.timeout(self.settings.max_call_seconds):
                hang_up = await self._acs_loop()
            if hang_up is None:
                self.end_reason = self.end_reason or "acs_closed"
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
                await self._hang_up()
        await self.ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=reason.encode())

    async def _end_call(self, reason: str) -> None:
        """Hang up for everyone, then close our socket (ACS would close it anyway)."""
        self.end_reason = self.end_reason or reason
        await self._hang_up()
        await self.ws.close()

    async def _hang_up(self) -> None:
        for attempt in (1, 2):
            try:
                await self._control.hang_up(self.ids)
                return
            except ResourceNotFoundError:
                log.info("hang-up: the call had already ended", extra=self._dims())
                return
            except Exception as exc:
                log.error("hang-up failed (attempt %d): %s", attempt, exc, extra=self._dims())
                await asyncio.sleep(1.0)

    async def _close(self, hang_up: str | None) -> None:
        if hang_up is not None:
            self.end_reason = self.end_reason or hang_up
            await self._hang_up()
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self.ws.closed:
            await self.ws.close()
        self._record_end()
        log.info(
            "call ended: %s after %d ms; %d turns, %d barge-ins, %d underruns, %d reconnects; dropped: "
            "malformed ACS %s, unknown ACS kinds %s, malformed model events %s",
            self.end_reason,
            self.elapsed_ms,
            len(self.turns),
            len(self.stats.barge_ins),
            self.playback.stats.underruns,
            self.stats.reconnects,
            dict(self.stats.malformed) or "none",
            dict(self.stats.unknown_kinds) or "none",
            dict(self.stats.model_malformed) or "none",
            extra=self._dims(),
        )

    def _record_end(self) -> None:
        why = self.end_reason or "unknown"
        underruns = self.playback.stats.underruns
        self.telemetry.event(
            "CallEnded",
            self.ids,
            measurements={"duration_s": round(self.elapsed_ms / 1000, 3)},
            who=ENDED_BY.get(why, "media_host"),
            why=why,
            turns=len(self.turns),
            barge_ins=len(self.stats.barge_ins),
            underruns=underruns,
            reconnects=self.stats.reconnects,
            malformed=dict(self.stats.malformed),
            unknown_kinds=dict(self.stats.unknown_kinds),
            model_malformed=dict(self.stats.model_malformed),
            model_errors=dict(self.stats.model_errors),
            dtmf_tones=len(self.stats.dtmf_at_ms),
            caller_audio_dropped=self.caller_audio.held_dropped,  # the model was away longer than the buffer
            assistant_audio_dropped=self.playback.stats.overflow_dropped,
            late_deltas_dropped=self.stats.late_deltas_dropped,
            max_queue_depth=self.playback.stats.max_queue_depth,
        )
        self.telemetry.metric("outbound_underruns", underruns, self.ids)

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

    # -- ACS side -----------------------------------------------------------------------------
    async def _acs_loop(self) -> str | None:
        """Until ACS closes the stream (None), or the transport fails: then the reason to hang up."""
        async for msg in self.ws:
            self._acs_heard_at = time.monotonic()
            if msg.type == aiohttp.WSMsgType.TEXT:
                await self._on_acs_message(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self._count_malformed("binary_frame")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                # the transport itself gave up (e.g. a message over its size limit) and has closed the
                # socket, so the call cannot go on: hang it up rather than leave the caller in silence
                reason = _TRANSPORT_ERRORS.get(getattr(msg.data, "code", 0), "acs_transport_error")
                self._count_malformed(reason)
                log.warning("ACS media socket failed: %s; hanging up", reason, extra=self._dims())
                return reason
        return None

    async def _watch_acs(self) -> None:
        """ACS sends a frame every 20 ms even in silence, so a socket quiet for MEDIA_IDLE_SECONDS is
        half-open (no FIN will come): hang the call up rather than hold it, and its model session,
        until MAX_CALL_SECONDS. A timer per call, not a timeout per frame: frames are the hot path."""
        idle = self.settings.media_idle_seconds
        while (quiet := time.monotonic() - self._acs_heard_at) < idle:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(idle - quiet)
        log.warning("no media from ACS for %.1f s; hanging up", quiet, extra=self._dims())
        await self._end_call("media_idle")

    async def _on_acs_message(self, text: bytes) -> None:
        if len(text) > self.settings.max_frame_bytes:
            self._count_malformed("oversized")
            return
        try:
            message = parse_inbound(text)
        except MalformedMessage as exc:
            self._count_malformed(exc.reason)
            return
        if isinstance(message, AudioData):
            await self._send_caller_audio(self.caller_audio.to_model(message))
        elif isinstance(message, AudioMetadata):
            if message.sample_rate != self.caller_audio.call_rate:
                self.caller_audio.set_rate(message.sample_rate)
                self.playback.set_rate(message.sample_rate, self.settings.soxr_quality)
            log.info("audio format: PCM %d Hz", message.sample_rate, extra=self._dims())
        elif isinstance(message, DtmfData):
            self._on_dtmf(message.tone)
        elif isinstance(message, UnknownKind):
            self._count_unknown_kind(message.kind)

    def _on_dtmf(self, tone: str) -> None:
        # keys are PINs and card numbers: the audit trail gets when and how many, the digits only on request
        self.stats.dtmf_at_ms.append(self.elapsed_ms)
        shown = f" {tone!r}" if self.telemetry.dtmf_digits else ""
        log.info("caller pressed a key%s (%d so far)", shown, len(self.stats.dtmf_at_ms), extra=self._dims())

    def _count_unknown_kind(self, kind: str) -> None:
        if (
            not self.stats.unknown_kinds
        ):  # once per call; the kinds and their counts are in the call's end record
            log.info("ignoring ACS message kind %r (and any other unknown kind)", kind, extra=self._dims())
        count_bounded(self.stats.unknown_kinds, kind)

    def _count_malformed(self, reason: str) -> None:
        if not self.stats.malformed[reason]:  # log once per reason, count always
            log.warning("dropping malformed ACS message: %s", reason, extra=self._dims())
        self.stats.malformed[reason] += 1

    async def _send_caller_audio(self, events: list[str]) -> None:
        model = self._model
        if model is None:
            self.caller_audio.hold(events)
            return
        for event in events:
            try:
                await model.send_str(event)
            except ConnectionError:  # the model socket is going away; keep the audio for the next one
                self.caller_audio.hold([event])

    async def _send_acs(self, text: str) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError):
                await self.ws.send_str(text)

    # -- model side ---------------------------------------------------------------------------
    async def _model_loop(self) -> None:
        first = True
        while not self._closing:
            try:
                model = await self._connector.connect(self.ids)
            except ModelUnavailable as exc:
                log.error("%s; hanging up", exc, extra=self._dims())
                await self._end_call("model_unavailable")
                return
            try:
                await self._start_model_session(model, greet=first)
                first = False
                async for msg in model:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._on_model_message(msg.data)
            except SessionRejected as exc:  # our configuration is wrong: every retry would fail the same way
                log.error("model rejected the session: %s; hanging up", exc, extra=self._dims())
                self.telemetry.event("ModelSessionRejected", self.ids, error=str(exc))
                await self._end_call("model_session_rejected")
                return
            except (ConnectionError, TimeoutError):
                pass  # lost while starting or sending: handled like a close below
            finally:
                self._model = None
                await model.close()  # this loop owns the socket, also when the call is cancelled
            if self._closing or self.ws.closed:
                return
            self.stats.reconnects += 1
            log.warning(
                "model socket lost mid-call (close code %s); reconnecting",
                model.close_code,
                extra=self._dims(),
            )
            if self.stats.reconnects > MAX_RECONNECTS:
                await self._end_call("model_unstable")
                return
            if self._live_response is not None:
                self._response_wanted = True  # the answer was cut off: ask the new session to give it
                self._live_response = None
                self._response_idle.set()

    async def _start_model_session(self, model: ModelSocket, *, greet: bool) -> None:
        m = self.settings.model
        if greet:
            self.telemetry.event("ModelSessionStarted", self.ids, deployment=m.deployment, voice=m.voice,
                                 auth_mode=self._connector.auth_mode, profile=self.profile or "default")  # fmt: skip
        else:
            self.telemetry.event("ModelReconnected", self.ids, reconnects=self.stats.reconnects)
            self.telemetry.metric("model_reconnects", 1, self.ids)
        await model.send_str(rt.session_update(self._session_config(restore=not greet)))
        await self._session_ready(model)
        if not greet:
            # the conversation so far, as turns of their roles: caller speech never gains instruction authority
            for turn in self.turns:
                if turn.text:
                    text = turn.text + (" [cut off: the caller interrupted]" if turn.interrupted else "")
                    await model.send_str(
                        rt.message_item("user" if turn.role == "caller" else "assistant", text)
                    )
        if greet or self._response_wanted:
            self._response_wanted = False
            await model.send_str(rt.response_create())
        # audio that arrives meanwhile is held again, so loop until nothing is left
        while held := self.caller_audio.release():
            for n, event in enumerate(held):
                try:
                    await model.send_str(event)
                except ConnectionError:
                    self.caller_audio.hold(held[n:])  # the next socket gets what this one did not take
                    raise
        self._model = model  # no await since the last release: nothing can slip between the two

    async def _session_ready(self, model: ModelSocket) -> None:
        """Until the model confirms our session.update: without it the call would run on the model's
        defaults (voice, tools, transcription), which is worse than failing clearly."""
        async with asyncio.timeout(SESSION_READY_TIMEOUT_S):
            async for msg in model:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    event = rt.parse_server_event(msg.data)
                except rt.MalformedEvent as exc:
                    self._count_model_malformed(exc.reason)
                    continue
                if isinstance(event, rt.SessionReady):
                    return
                if isinstance(event, rt.ServerError):
                    raise SessionRejected(f"{event.code}: {event.message}")
                await self._on_model_message(msg.data)  # anything else is routed as usual
        raise ConnectionError("the model closed the socket before confirming the session")

    def _session_config(self, *, restore: bool) -> rt.SessionConfig:
        m = self.settings.model
        instructions = self.instructions
        if (
            restore
        ):  # the conversation itself comes back as items (see _start_model_session), not as instructions
            instructions += (
                "\n\nThe connection was briefly interrupted mid-call. Continue naturally; do not greet again."
            )
        return rt.SessionConfig(
            instructions=instructions,
            voice=m.voice,
            transcription_model=m.transcription_model,
            vad_threshold=m.vad_threshold,
            vad_silence_ms=m.vad_silence_ms,
            vad_prefix_ms=m.vad_prefix_ms,
            tools=[tool_schema(t) for t in self._tools.values()],
        )

    async def _send_model(self, event: str) -> None:
        if self._model is not None:
            with contextlib.suppress(ConnectionError):
                await self._model.send_str(event)

    def _count_model_malformed(self, reason: str) -> None:
        if not self.stats.model_malformed[reason]:  # log once per reason, count always
            log.warning("dropping malformed model event: %s", reason, extra=self._dims())
        self.stats.model_malformed[reason] += 1

    async def _on_model_message(self, text: bytes) -> None:
        try:
            event = rt.parse_server_event(text)
        except rt.MalformedEvent as exc:
            self._count_model_malformed(exc.reason)
            return
        if isinstance(event, rt.AudioDelta):
            if event.response_id in self._cancelled:
                self.stats.late_deltas_dropped += 1
            else:
                self.playback.push(event.response_id, event.item_id, event.pcm)
        elif isinstance(event, rt.AudioDone):
            if event.response_id not in self._cancelled:
                self.playback.finish_item(event.response_id, event.item_id)
        elif isinstance(event, rt.SpeechStarted):
            await self._barge_in()
        elif isinstance(event, rt.ResponseCreated):
            self._live_response = event.response_id
            self._response_idle.clear()
        elif isinstance(event, rt.ResponseDone):
            await self._on_response_done(event)
        elif isinstance(event, rt.FunctionCall):
            self.stats.tool_calls[event.name] += 1
            self._spawn(self._run_tool(event), f"tool-{event.name}")
        elif isinstance(event, rt.SpeechStopped):
            # server VAD says so only after its silence window: the caller stopped talking that long ago
            self._caller_stopped_at = time.monotonic() - self.settings.model.vad_silence_ms / 1000
        elif isinstance(event, rt.CallerTranscript):
            self.turns.append(Turn("caller", event.text, event.item_id, self.elapsed_ms))
            self.telemetry.transcript(self.ids, "caller", event.text)
        elif isinstance(event, rt.AssistantTranscript):
            interrupted = event.response_id in self._cancelled
            self.turns.append(Turn("assistant", event.text, event.item_id, self.elapsed_ms, interrupted))
            self.telemetry.transcript(self.ids, "assistant", event.text)
        elif isinstance(event, rt.ServerError):
            first = count_bounded(self.stats.model_errors, event.code)  # each code logged once a call
            level = logging.WARNING if first and event.code not in BENIGN_MODEL_ERRORS else logging.DEBUG
            log.log(level, "model error %s: %s", event.code, event.message, extra=self._dims())

    async def _on_response_done(self, event: rt.ResponseDone) -> None:
        if event.response_id == self._live_response:
            self._live_response = None
            self._response_idle.set()
        if event.status == "failed":
            log.warning("model response failed: %s", event.reason, extra=self._dims())
        if self._response_wanted and self._live_response is None:
            self._response_wanted = False
            await self._send_model(rt.response_create())

    async def _barge_in(self) -> None:
        """Caller speech over the assistant: stop, drop, cancel, truncate — in that order."""
        detected = time.monotonic()
        interrupted = self.playback.interrupt()  # synchronous: nothing queued can be sent after this
        live = self._live_response
        if interrupted is None and live is None:
            return
        self.stats.barge_ins.append(detected)
        await self._send_acs(STOP_AUDIO)
        reaction_ms = (time.monotonic() - detected) * 1000
        self.telemetry.metric("barge_in_reaction_ms", reaction_ms, self.ids)
        if live is not None:
            self._cancelled.add(live)
            await self._send_model(rt.response_cancel(live))
        if interrupted is not None:
            self._cancelled.add(interrupted.response_id)
            await self._send_model(rt.truncate(interrupted.item_id, interrupted.audio_end_ms))
        audio_end_ms = interrupted.audio_end_ms if interrupted else 0
        self.telemetry.event(
            "BargeIn",
            self.ids,
            measurements={"reaction_ms": round(reaction_ms, 2)},
            audio_end_ms=audio_end_ms,
        )
        log.info("barge-in: stopped assistant audio at %s ms", audio_end_ms, extra=self._dims())

    def _assistant_audio_started(self, item_id: str, at: float) -> None:
        """The first frame of an assistant item went to ACS: the latencies a caller feels."""
        if self.stats.first_audio_ms is None:
            self.stats.first_audio_ms = (at - self.started_at) * 1000
            self.telemetry.metric("first_assistant_audio_ms", self.stats.first_audio_ms, self.ids)
        if self._caller_stopped_at is not None:
            latency = (at - self._caller_stopped_at) * 1000
            self.stats.turn_latency_ms.append(latency)
            self.telemetry.metric("turn_latency_ms", latency, self.ids, item_id=item_id)
            self._caller_stopped_at = None

    # -- tools --------------------------------------------------------------------------------
    async def _run_tool(self, call: rt.FunctionCall) -> None:
        started = time.monotonic()
        result, outcome = await self._call_tool(call)
        duration_ms = (time.monotonic() - started) * 1000
        self.telemetry.event("ToolCalled", self.ids, measurements={"duration_ms": round(duration_ms, 2)},
                             tool=call.name, outcome=outcome)  # fmt: skip
        log.info("tool %s: %s in %d ms", call.name, outcome, duration_ms, extra=self._dims())
        await self._send_model(rt.function_output(call.call_id, result.output))
        if result.respond:
            await self._request_response()
        if result.closes_call:
            await self.ws.close()  # the call is over; ACS would close the stream, we need not wait

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

    async def _request_response(self) -> None:
        if self._live_response is not None:
            self._response_wanted = True  # one response at a time: ask again when this one is done
        else:
            await self._send_model(rt.response_create())

    async def _speech_finished(self) -> None:
        """Until the assistant's current answer (e.g. its goodbye) has been said and played out."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SPEECH_WAIT_TIMEOUT_S):
                await self._response_idle.wait()
                await self.playback.wait_played()

    def _ending(self, reason: str) -> None:
        self.end_reason = self.end_reason or reason
