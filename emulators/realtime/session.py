"""One Realtime API session on one WebSocket: the client events in, the server events out.

Three tasks per connection:
- the reader puts every client message on an inbox, in arrival order;
- the worker handles them one at a time, in that order, so a `commit` followed by a
  `response.create` sees the committed words. Consecutive audio appends are batched into one trip
  to a worker thread (resampling, VAD and the recogniser must not block the event loop);
- the writer sends server events from an outbox, in exactly the order they were emitted.

Emitting is synchronous (`_emit` only queues), so every state change and the events that report it
happen without an `await` in between: no other event can slip into the middle. A response speaks
from its own task, paced against the clock, and can be stopped at any point between two deltas.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from . import protocol as p
from .asr import Recognizer
from .assistant import Dialog, Reply
from .listening import EmptyBuffer, Listener, SpeechStarted, TurnEnded
from .protocol import ClientError, Item
from .speech import VOICES
from .speech import voice as espeak
from .tool_arguments import fit_arguments

if TYPE_CHECKING:
    from .server import Engine

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = p.BYTES_PER_MS * 1000  # audio handed to the listener thread in one go
MAX_APPEND_BYTES = 15 * 1024 * 1024  # the Realtime API's limit for one append
INBOX_SIZE = 2000  # client events waiting; the reader blocks (TCP back-pressure) beyond this
ARGUMENT_DELTA_CHARS = 24  # function call arguments per response.function_call_arguments.delta
BINARY = "\0binary"  # stands for a binary WebSocket message in the inbox
_QUOTED = re.compile(r"""\bsay\b[^"\u201c]{0,40}["\u201c]([^"\u201d]+)["\u201d]""", re.IGNORECASE)


@dataclass
class TurnStats:
    item_id: str
    audio_start_ms: int
    audio_end_ms: int
    transcript: str
    asr_cpu_ms: float
    end_to_first_audio_ms: float | None = None  # end of turn known -> first audio delta emitted


@dataclass
class SessionStats:
    session_id: str
    path: str = ""  # where the client connected (/openai/v1/realtime, /openai/realtime, /v1/realtime)
    turns: list[TurnStats] = field(default_factory=list)
    responses: int = 0
    cancelled: int = 0
    listener_cpu_ms: float = 0.0  # resample + VAD + recogniser, all turns
    tts_cpu_ms: float = 0.0
    audio_in_ms: int = 0
    audio_out_ms: int = 0
    errors: int = 0


@dataclass
class LiveResponse:
    id: str
    item: Item
    reply: Reply
    text_only: bool
    turn: TurnStats | None
    metadata: Any = None
    words: list[str] = field(default_factory=list)
    words_sent: int = 0
    task: asyncio.Task[None] | None = None

    @property
    def said(self) -> str:
        return " ".join(self.words[: self.words_sent])


class EngineSession:
    def __init__(self, ws: web.WebSocketResponse, engine: Engine, model: str, path: str = "") -> None:
        self._ws = ws
        self._engine = engine
        self._id = p.new_id("sess")
        self._session = p.default_session(model)
        self._settings = p.settings_of(self._session)
        self.stats = SessionStats(self._id, path)
        self._items: dict[str, Item] = {}
        self._dialog = Dialog(self._settings.tools)
        self._listener: Listener | None = None
        self._inbox: asyncio.Queue[str | None] = asyncio.Queue(INBOX_SIZE)
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._response: LiveResponse | None = None
        self._auto_pending = False  # a VAD turn ended while a response was live: answer it next
        self._auto_turn: TurnStats | None = None
        self._replies: dict[str, Reply] = {}  # assistant item id -> what it was meant to say
        self._speech_item: str | None = None
        self._assistant_audio = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def id(self) -> str:
        return self._id

    # -- lifecycle --------------------------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self._write(), name=f"writer:{self.id}")
        try:
            self._emit({"type": "session.created", "session": self._session})
            model = self._engine.domain_model
            recognizer = await asyncio.to_thread(Recognizer, model, fwdflat=self._engine.config.fwdflat)
            self._listener = Listener(recognizer, self._settings.vad)
            worker = self._spawn(self._work(), "worker")
            async for msg in self._ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._inbox.put(msg.data)
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    await self._inbox.put(BINARY)
            await self._inbox.put(None)
            await asyncio.wait([worker], timeout=0.5)  # let it finish what the client sent last
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._outbox.put_nowait(None)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            if self._listener is not None:
                self.stats.listener_cpu_ms = self._listener.cpu_seconds * 1000
                self.stats.audio_in_ms = self._listener.audio_ms
            log.info(
                "realtime session %s closed: %d turns, %d responses (%d cancelled), %.0f s audio in, "
                "listener %.0f ms CPU, speech %.0f ms CPU, %d errors",
                self.id,
                len(self.stats.turns),
                self.stats.responses,
                self.stats.cancelled,
                self.stats.audio_in_ms / 1000,
                self.stats.listener_cpu_ms,
                self.stats.tts_cpu_ms,
                self.stats.errors,
            )

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=reason.encode())

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"{name}:{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s task %s failed", self.id, task.get_name(), exc_info=task.exception())
            self._emit(_server_error("internal error; the session is closing"))
            self._spawn(self._ws.close(code=aiohttp.WSCloseCode.INTERNAL_ERROR), "close")

    async def _write(self) -> None:
        while (text := await self._outbox.get()) is not None:
            if self._ws.closed:
                return
            try:
                await self._ws.send_str(text)
            except ConnectionError:
                return

    def _emit(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        assert kind in p.SERVER_EVENT_TYPES, kind
        self._outbox.put_nowait(json.dumps({"type": kind, "event_id": p.new_id("event"), **event}))

    def _error(self, err: ClientError, client_event_id: str | None) -> None:
        self.stats.errors += 1
        log.debug("session %s: client error %s: %s", self.id, err.code, err.message)
        self._emit(p.error_event(err, client_event_id))

    # -- the worker: client events in order -------------------------------------------------------
    async def _work(self) -> None:
        held: list[str | None] = []  # taken from the inbox while batching audio, not yet handled
        while True:
            raw = held.pop(0) if held else await self._inbox.get()
            if raw is None:
                return
            event = self._parse(raw)
            if isinstance(event, ClientError):
                self._error(event, None)
                continue
            if event["type"] != "input_audio_buffer.append":
                await self._handle(event)
                continue
            batch = [event]
            size = _b64_size(event)
            while size < MAX_BATCH_BYTES and not self._inbox.empty():  # what is already waiting
                raw = self._inbox.get_nowait()
                nxt = self._parse(raw) if raw is not None else None
                if isinstance(nxt, dict) and nxt["type"] == "input_audio_buffer.append":
                    batch.append(nxt)
                    size += _b64_size(nxt)
                else:
                    held.append(raw)
                    break
            audio = b"".join(a for e in batch if (a := self._audio_of(e)))
            if not audio:
                continue
            try:
                await self._listen(audio)
            except Exception:  # as for any event: a bug costs this audio, not the session
                log.exception("session %s: listening failed", self.id)
                self.stats.errors += 1
                self._emit(_server_error("the engine failed on input audio"))

    def _parse(self, raw: str) -> dict[str, Any] | ClientError:
        if raw == BINARY:
            return ClientError("invalid_event", "binary messages are not Realtime API events")
        try:
            event = json.loads(raw)
        except ValueError as exc:
            return ClientError("invalid_json", f"the message is not valid JSON: {exc}")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return ClientError("invalid_event", "an event must be a JSON object with a string 'type'", "type")
        event_id = event.get("event_id")
        if event_id is not None and not isinstance(event_id, str):
            event["event_id"] = str(event_id)
        return event

    def _audio_of(self, event: dict[str, Any]) -> bytes | None:
        audio = event.get("audio")
        try:
            if not isinstance(audio, str):
                raise ClientError("invalid_type", "input_audio_buffer.append needs 'audio' (base64)", "audio")
            if len(audio) > MAX_APPEND_BYTES * 4 // 3 + 4:
                raise ClientError("invalid_value", "one append may carry at most 15 MiB of audio", "audio")
            try:
                return base64.b64decode(audio, validate=True)
            except (binascii.Error, ValueError):
                raise ClientError("invalid_value", "audio is not valid base64", "audio") from None
        except ClientError as err:
            self._error(err, event.get("event_id"))
            return None

    async def _handle(self, event: dict[str, Any]) -> None:
        handler = self._HANDLERS.get(event["type"])
        try:
            if handler is None:
                raise ClientError(
                    "unknown_event_type",
                    f"Invalid value: {event['type']!r} is not a supported client event",
                    "type",
                )
            result = handler(self, event)
            if asyncio.iscoroutine(result):
                await result
        except ClientError as err:
            self._error(err, event.get("event_id"))
        except Exception:  # a bug here must cost one event, never the session
            log.exception("session %s: handling %s failed", self.id, event["type"])
            self.stats.errors += 1
            self._emit(_server_error(f"the engine failed on {event['type']}", event.get("event_id")))

    # -- session ----------------------------------------------------------------------------------
    def _on_session_update(self, event: dict[str, Any]) -> None:
        merged = p.merge_session(self._session, event.get("session"))
        settings = p.settings_of(merged)
        if settings.voice != self._settings.voice and self._assistant_audio:
            raise ClientError(
                "cannot_update_voice",
                "the voice cannot change once the assistant has spoken",
                "session.audio.output.voice",
            )
        self._session, self._settings = merged, settings
        self._dialog.tools = set(settings.tools)
        assert self._listener is not None
        self._listener.configure(settings.vad)
        self._emit({"type": "session.updated", "session": self._session})

    # -- the input audio buffer -------------------------------------------------------------------
    async def _listen(self, pcm: bytes) -> None:
        assert self._listener is not None
        for ev in await asyncio.to_thread(self._listener.feed, pcm):
            if isinstance(ev, SpeechStarted):
                self._speech_item = p.new_id("item")
                self._emit(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": ev.audio_start_ms,
                        "item_id": self._speech_item,
                    }
                )
                if self._settings.interrupt_response and self._response is not None:
                    self._finish(self._response, "cancelled", "turn_detected")
            else:
                self._turn_ended(ev)

    def _turn_ended(self, ev: TurnEnded) -> None:
        item_id = self._speech_item or p.new_id("item")
        self._speech_item = None
        if ev.by_vad:
            self._emit(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": ev.audio_end_ms,
                    "item_id": item_id,
                }
            )
        turn = TurnStats(item_id, ev.audio_start_ms, ev.audio_end_ms, ev.transcript, ev.asr_cpu_ms)
        self.stats.turns.append(turn)
        self._commit_user(item_id, ev.transcript, ev.audio_end_ms - ev.audio_start_ms)
        if ev.by_vad and self._settings.create_response:
            if self._response is None:
                self._respond(turn=turn, end_of_turn_at=ev.detected_at)
            else:
                self._auto_pending, self._auto_turn = True, turn

    def _commit_user(self, item_id: str, transcript: str, duration_ms: int) -> None:
        previous = self._last_item_id()
        item = Item(item_id, "message", role="user", content_type="input_audio", text=transcript)
        item.transcript_pending = True
        self._emit({"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": previous})
        self._add_item(item, previous)
        if self._settings.transcription:
            item.transcript_pending = False
            self._emit(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id,
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": p.transcription_usage(
                        self._settings.transcription_model, transcript, max(0, duration_ms)
                    ),
                }
            )
        self._emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item.wire()})

    async def _on_commit(self, event: dict[str, Any]) -> None:
        assert self._listener is not None
        try:
            ev = await asyncio.to_thread(self._listener.commit)
        except EmptyBuffer as exc:
            raise ClientError("input_audio_buffer_commit_empty", str(exc)) from None
        self._turn_ended(ev)

    async def _on_clear(self, event: dict[str, Any]) -> None:
        assert self._listener is not None
        await asyncio.to_thread(self._listener.clear)
        self._speech_item = None
        self._emit({"type": "input_audio_buffer.cleared"})

    # -- conversation items -----------------------------------------------------------------------
    def _last_item_id(self) -> str | None:
        return next(reversed(self._items), None)

    def _add_item(self, item: Item, previous: str | None) -> None:
        self._items[item.id] = item
        self._emit({"type": "conversation.item.added", "previous_item_id": previous, "item": item.wire()})

    def _on_item_create(self, event: dict[str, Any]) -> None:
        item = p.parse_item(event.get("item"))
        if item.id in self._items:
            raise ClientError("invalid_value", f"an item with id {item.id!r} already exists", "item.id")
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and previous not in self._items:
            raise ClientError("invalid_value", f"previous_item_id {previous!r} not found", "previous_item_id")
        if item.type == "message" and item.role == "assistant":
            # A past answer put back (a reconnected call restores its conversation this way): what it
            # answered is answered, and the dialog catches up on both.
            item.answered = True
            self._dialog.recall(self._said(self._take_inputs()), item.text)
        previous_id = self._last_item_id()
        self._add_item(item, previous_id)
        self._emit({"type": "conversation.item.done", "previous_item_id": previous_id, "item": item.wire()})

    def _on_item_truncate(self, event: dict[str, Any]) -> None:
        item_id, content_index, end_ms = (
            event.get("item_id"),
            event.get("content_index"),
            event.get("audio_end_ms"),
        )
        if not isinstance(item_id, str):
            raise ClientError("missing_required_parameter", "item_id is required", "item_id")
        if not isinstance(content_index, int) or isinstance(content_index, bool):
            raise ClientError("missing_required_parameter", "content_index is required", "content_index")
        if not isinstance(end_ms, int) or isinstance(end_ms, bool) or end_ms < 0:
            raise ClientError("invalid_value", "audio_end_ms must be a non-negative integer", "audio_end_ms")
        item = self._items.get(item_id)
        if item is None:
            raise ClientError("invalid_value", f"item {item_id!r} not found", "item_id")
        if item.role != "assistant" or item.content_type != "output_audio":
            raise ClientError("invalid_value", "only assistant audio items can be truncated", "item_id")
        if content_index != 0:
            raise ClientError(
                "invalid_value", f"item {item_id!r} has no content part {content_index}", "content_index"
            )
        if end_ms > item.audio_ms:
            raise ClientError(
                "invalid_value",
                f"audio_end_ms {end_ms} is beyond the item's audio ({item.audio_ms} ms)",
                "audio_end_ms",
            )
        live = self._response
        if live is not None and live.item is item:  # truncating what is still being said stops it
            self._finish(live, "cancelled", "client_cancelled")
        heard = _cut(item.text, end_ms / item.audio_ms if item.audio_ms else 0.0)
        item.audio_bytes = min(item.audio_bytes, end_ms * p.BYTES_PER_MS)
        item.text = heard
        if (reply := self._replies.get(item.id)) is not None:
            self._dialog.heard_only(reply, len(heard))
        self._emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
        )

    def _on_item_delete(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise ClientError("invalid_value", f"item {item_id!r} not found", "item_id")
        if self._response is not None and self._response.item.id == item_id:
            raise ClientError("invalid_value", "the live response's item cannot be deleted", "item_id")
        del self._items[item_id]
        self._emit({"type": "conversation.item.deleted", "item_id": item_id})

    def _on_item_retrieve(self, event: dict[str, Any]) -> None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str) or item_id not in self._items:
            raise ClientError("invalid_value", f"item {item_id!r} not found", "item_id")
        self._emit({"type": "conversation.item.retrieved", "item": self._items[item_id].wire()})

    # -- responses ---------------------------------------------------------------------------------
    def _on_response_create(self, event: dict[str, Any]) -> None:
        options = event.get("response") or {}
        if not isinstance(options, dict):
            raise ClientError("invalid_type", "response must be an object", "response")
        instructions = options.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise ClientError(
                "invalid_type", "response.instructions must be a string", "response.instructions"
            )
        modalities = options.get("output_modalities")
        if modalities is not None and modalities not in (["audio"], ["text"]):
            raise ClientError(
                "invalid_value",
                "output_modalities must be ['audio'] or ['text']",
                "response.output_modalities",
            )
        if self._response is not None:
            raise ClientError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self._response.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        text_only = self._settings.text_only if modalities is None else modalities == ["text"]
        self._respond(instructions=instructions, text_only=text_only, metadata=options.get("metadata"))

    def _on_response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        live = self._response
        if live is None or (wanted is not None and wanted != live.id):
            raise ClientError("response_cancel_not_active", "Cancellation failed: no active response found.")
        self._finish(live, "cancelled", "client_cancelled")

    def _respond(
        self,
        *,
        turn: TurnStats | None = None,
        end_of_turn_at: float | None = None,
        instructions: str | None = None,
        text_only: bool | None = None,
        metadata: Any = None,
    ) -> None:
        reply = self._reply(instructions)
        text_only = self._settings.text_only if text_only is None else text_only
        item = Item(
            p.new_id("item"),
            "message",
            role="assistant",
            status="in_progress",
            content_type="output_text" if text_only else "output_audio",
            answered=True,
        )
        resp = LiveResponse(p.new_id("resp"), item, reply, text_only, turn, metadata, reply.text.split())
        self._replies[item.id] = reply
        self._response = resp
        self.stats.responses += 1
        self._emit({"type": "response.created", "response": self._response_object(resp, "in_progress")})
        self._emit(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 0,
                "item": item.wire(),
            }
        )
        self._add_item(item, self._last_item_id())
        self._emit(
            {
                "type": "response.content_part.added",
                **self._where(resp),
                "part": item.event_part(),
            }
        )
        resp.task = self._spawn(self._speak(resp, end_of_turn_at), f"response:{resp.id}")

    def _reply(self, instructions: str | None) -> Reply:
        dialog = self._dialog
        quoted = _QUOTED.search(instructions or "")
        if quoted:
            return dialog.say(quoted.group(1).strip())
        inputs = self._take_inputs()
        said = self._said(inputs)
        if said is not None:
            return dialog.hear(said)
        outputs = [i for i in inputs if i.type == "function_call_output"]
        if outputs:
            call = next((c for c in self._items.values() if c.call_id == outputs[-1].call_id), None)
            return dialog.tool_result(call.name if call else "", outputs[-1].output)
        return dialog.prompt()

    def _take_inputs(self) -> list[Item]:
        """The caller's messages and tool outputs no answer has used yet, now marked as used."""
        inputs = [
            i
            for i in self._items.values()
            if not i.answered
            and (i.type == "function_call_output" or (i.type == "message" and i.role == "user"))
        ]
        for i in inputs:
            i.answered = True
        return inputs

    @staticmethod
    def _said(inputs: list[Item]) -> str | None:
        """What the caller's messages among `inputs` said (maybe nothing audible); None without any."""
        messages = [i.text for i in inputs if i.type == "message"]
        return " ".join(messages) if messages else None

    async def _speak(self, resp: LiveResponse, end_of_turn_at: float | None) -> None:
        config = self._engine.config
        if resp.text_only:
            for n, word in enumerate(resp.words):
                resp.words_sent = n + 1
                self._emit(
                    {"type": "response.output_text.delta", **self._where(resp), "delta": _word_delta(n, word)}
                )
            self._finish(resp, "completed")
            return
        settings = self._settings
        try:
            pcm, cpu = await asyncio.to_thread(
                _synthesize, resp.reply.text, VOICES[settings.voice], settings.speed
            )
        except Exception as exc:
            log.exception("session %s: speech synthesis failed", self.id)
            self._finish(resp, "failed", error={"type": "server_error", "message": f"speech failed: {exc}"})
            return
        self.stats.tts_cpu_ms += cpu * 1000
        if self._response is not resp:
            return
        chunk = config.chunk_ms * p.BYTES_PER_MS
        chunks = [pcm[i : i + chunk] for i in range(0, len(pcm), chunk)] or [b""]
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n, piece in enumerate(chunks):
            upto = round(len(resp.words) * (n + 1) / len(chunks))
            if upto > resp.words_sent:
                delta = "".join(_word_delta(k, resp.words[k]) for k in range(resp.words_sent, upto))
                resp.words_sent = upto
                self._emit(
                    {"type": "response.output_audio_transcript.delta", **self._where(resp), "delta": delta}
                )
            if piece:
                self._emit(
                    {
                        "type": "response.output_audio.delta",
                        **self._where(resp),
                        "delta": base64.b64encode(piece).decode("ascii"),
                    }
                )
                resp.item.audio_bytes += len(piece)
                self._assistant_audio = True
                if n == 0 and end_of_turn_at is not None and resp.turn is not None:
                    resp.turn.end_to_first_audio_ms = (time.perf_counter() - end_of_turn_at) * 1000
            if config.pace > 0:
                due = started + max(0, (n + 1) * config.chunk_ms - config.lead_ms) / 1000 / config.pace
                await asyncio.sleep(max(0.0, due - loop.time()))
            else:
                await asyncio.sleep(0)
            if self._response is not resp:
                return
        self._finish(resp, "completed")

    def _finish(
        self,
        resp: LiveResponse,
        status: str,
        reason: str | None = None,
        *,
        error: dict[str, Any] | None = None,
    ) -> None:
        """End `resp` (completed, or cancelled between two deltas): the done events, then response.done."""
        if self._response is not resp:
            return
        self._response = None
        if resp.task is not None and resp.task is not asyncio.current_task():
            resp.task.cancel()
        item, reply = resp.item, resp.reply
        completed = status == "completed"
        item.text = reply.text if completed else resp.said
        item.status = "completed" if completed else "incomplete"
        where = self._where(resp)
        if resp.text_only:
            self._emit({"type": "response.output_text.done", **where, "text": item.text})
        else:
            self._emit({"type": "response.output_audio_transcript.done", **where, "transcript": item.text})
            self._emit({"type": "response.output_audio.done", **where})
        self._emit({"type": "response.content_part.done", **where, "part": item.event_part()})
        self._emit(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 0,
                "item": item.wire(),
            }
        )
        self._emit(
            {
                "type": "conversation.item.done",
                "previous_item_id": self._previous_of(item.id),
                "item": item.wire(),
            }
        )
        if not completed:
            self.stats.cancelled += 1
            self._dialog.heard_only(reply, len(item.text))
        outputs = [item]
        call = reply.tool_call
        if completed and call is not None and call.name in self._settings.tools:
            # the arguments the declared schema asks for, not merely the ones the assistant had in mind
            arguments = fit_arguments(self._settings.tool_parameters.get(call.name), call.arguments)
            outputs.append(self._function_call(resp, call.name, json.dumps(arguments)))
        self.stats.audio_out_ms += item.audio_ms
        response = self._response_object(resp, status, outputs, reason)
        if error is not None:
            response["status_details"] = {"type": status, "error": error}
        self._emit({"type": "response.done", "response": response})
        if self._auto_pending:
            self._auto_pending = False
            self._respond(turn=self._auto_turn)

    def _function_call(self, resp: LiveResponse, name: str, arguments: str) -> Item:
        call = Item(
            p.new_id("item"), "function_call", status="in_progress", call_id=p.new_id("call"), name=name
        )
        where = {"response_id": resp.id, "item_id": call.id, "output_index": 1, "call_id": call.call_id}
        self._emit(
            {
                "type": "response.output_item.added",
                "response_id": resp.id,
                "output_index": 1,
                "item": call.wire(),
            }
        )
        self._add_item(call, self._last_item_id())
        for start in range(0, len(arguments), ARGUMENT_DELTA_CHARS):  # streamed in pieces, as a model writes
            delta = arguments[start : start + ARGUMENT_DELTA_CHARS]
            self._emit({"type": "response.function_call_arguments.delta", **where, "delta": delta})
        call.arguments, call.status = arguments, "completed"
        self._emit(
            {"type": "response.function_call_arguments.done", **where, "name": name, "arguments": arguments}
        )
        self._emit(
            {
                "type": "response.output_item.done",
                "response_id": resp.id,
                "output_index": 1,
                "item": call.wire(),
            }
        )
        self._emit({"type": "conversation.item.done", "previous_item_id": resp.item.id, "item": call.wire()})
        return call

    def _previous_of(self, item_id: str) -> str | None:
        previous = None
        for key in self._items:
            if key == item_id:
                return previous
            previous = key
        return previous

    @staticmethod
    def _where(resp: LiveResponse) -> dict[str, Any]:
        return {"response_id": resp.id, "item_id": resp.item.id, "output_index": 0, "content_index": 0}

    def _response_object(
        self, resp: LiveResponse, status: str, output: list[Item] | None = None, reason: str | None = None
    ) -> dict[str, Any]:
        heard_in = [i for i in self._items.values() if i.type == "message" and i.role == "user"]
        audio_tokens = resp.item.audio_ms // 50
        return {
            "object": "realtime.response",
            "id": resp.id,
            "status": status,
            "status_details": None if reason is None else {"type": status, "reason": reason},
            "output": [i.wire() for i in output or []],
            "conversation_id": self._id.replace("sess_", "conv_"),
            "output_modalities": ["text"] if resp.text_only else ["audio"],
            "audio": {
                "output": {"format": {"type": "audio/pcm", "rate": p.RATE}, "voice": self._settings.voice}
            },
            "metadata": resp.metadata,
            "usage": None
            if status == "in_progress"
            else p.usage(
                sum(p.text_tokens(i.text) for i in heard_in if i.content_type == "input_text")
                + p.text_tokens(self._settings.instructions),
                sum(p.text_tokens(i.text) * 3 for i in heard_in if i.content_type == "input_audio"),
                p.text_tokens(resp.item.text),
                audio_tokens,
            ),
        }

    _HANDLERS: dict[str, Callable[[EngineSession, dict[str, Any]], Any]] = {
        "session.update": _on_session_update,
        "input_audio_buffer.commit": _on_commit,
        "input_audio_buffer.clear": _on_clear,
        "conversation.item.create": _on_item_create,
        "conversation.item.truncate": _on_item_truncate,
        "conversation.item.delete": _on_item_delete,
        "conversation.item.retrieve": _on_item_retrieve,
        "response.create": _on_response_create,
        "response.cancel": _on_response_cancel,
    }


def _synthesize(text: str, voice: str, speed: float) -> tuple[bytes, float]:
    started = time.thread_time()
    pcm = espeak().synthesize(text, voice=voice, speed=speed)
    return pcm, time.thread_time() - started


def _word_delta(index: int, word: str) -> str:
    return word if index == 0 else " " + word


def _cut(text: str, fraction: float) -> str:
    """The words of `text` heard when its audio stops at `fraction` (proportional to characters)."""
    if fraction >= 1.0:
        return text
    keep = int(len(text) * max(0.0, fraction))
    cut = text[:keep]
    if keep < len(text) and not text[keep].isspace():
        cut = cut.rsplit(" ", 1)[0] if " " in cut else ""
    return cut.rstrip()


def _server_error(message: str, client_event_id: str | None = None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": "server_error",
            "code": "server_error",
            "message": message,
            "param": None,
            "event_id": client_event_id,
        },
    }


def _b64_size(event: dict[str, Any]) -> int:
    audio = event.get("audio")
    return len(audio) * 3 // 4 if isinstance(audio, str) else 0
