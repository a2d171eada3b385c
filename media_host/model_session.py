"""The realtime model side of one call: connect, configure, restore after a drop, and send.

Everything the call sends the model goes through one outbox drained by one task per socket, so a
slow model socket never stalls the reading of the caller's audio (the caller side only enqueues),
and nothing is sent from two places at once. Caller audio waits in the outbox while the socket is
away (bounded: the oldest goes first); anything else addressed to a socket that is gone is dropped,
since it was about that socket's session. Responses are tracked here (one at a time, which one is
live, which were cancelled); what to do about the model's events is the call core's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import aiohttp

from common.telemetry import CallIds, Telemetry

from . import realtime_protocol as rt
from .model_link import ModelConnector, ModelSocket, ModelUnavailable

log = logging.getLogger(__name__)

MAX_RECONNECTS = 5
SESSION_READY_TIMEOUT_S = 10.0
RESTORED = "\n\nThe connection was briefly interrupted mid-call. Continue naturally; do not greet again."


class SessionRejected(Exception):
    """The model answered our session.update with an error."""


class Speech:
    """One response of the model, as the call core holds it (in the spirit of LiveKit's SpeechHandle):
    it can be interrupted, and awaited until the model has finished generating it. Whether it has also
    been heard is the leg's to say (`Leg.wait_played`)."""

    def __init__(self, session: ModelSession, response_id: str) -> None:
        self.id = response_id
        self._session = session
        self._generated = asyncio.Event()

    @property
    def interrupted(self) -> bool:
        return self._session.cancelled(self.id)

    def interrupt(self) -> None:
        self._session.cancel(self.id)

    async def generated(self) -> None:
        """Until the model is done with it: completed, cancelled, or cut off by a lost socket."""
        await self._generated.wait()

    def _end(self) -> None:
        self._generated.set()


class ModelHandler(Protocol):
    """What the call core does with the model's side of the call."""

    async def on_model_event(self, event: rt.ServerEvent) -> None: ...

    def on_malformed(self, reason: str) -> None: ...

    def conversation(self) -> Sequence[tuple[str, str]]:
        """The conversation so far as (role, text), role "user" or "assistant", to restore a session."""
        ...

    async def model_failed(self, reason: str) -> None:
        """The model cannot serve the call (unreachable, configuration refused, unstable)."""
        ...


class ModelSession:
    def __init__(
        self,
        *,
        connector: ModelConnector,
        ids: CallIds,
        telemetry: Telemetry,
        config: rt.SessionConfig,
        started: dict[str, str],  # the ModelSessionStarted audit event's properties
        max_buffered_events: int,  # caller audio held while the socket is away, in appends
        handler: ModelHandler,
    ) -> None:
        self._connector = connector
        self._ids = ids
        self._telemetry = telemetry
        self._config = config
        self._started = started
        self._handler = handler
        self._outbox: deque[tuple[str, bool]] = deque()  # (event, is caller audio)
        self._max_outbox = max_buffered_events
        self._wake = asyncio.Event()
        self._socket: ModelSocket | None = None  # set once the session is configured and restored
        self.reconnects = 0
        self.audio_dropped = 0  # caller audio the model never got: away (or behind) longer than the buffer
        self.speaking: Speech | None = None  # the response being generated, one at a time
        self._response_wanted = False
        self._cancelled: set[str] = set()

    # -- what the call sends ------------------------------------------------------------------
    def send(self, event: str) -> None:
        """A control event for the current session; dropped if there is none (it would be stale)."""
        if self._socket is not None:
            self._enqueue(event, audio=False)

    def append_audio(self, events: list[str]) -> None:
        """Caller audio, in order; held while the socket is away."""
        for event in events:
            self._enqueue(event, audio=True)

    def _enqueue(self, event: str, *, audio: bool) -> None:
        if len(self._outbox) >= self._max_outbox:
            _, was_audio = self._outbox.popleft()
            self.audio_dropped += was_audio
        self._outbox.append((event, audio))
        self._wake.set()

    # -- responses ----------------------------------------------------------------------------
    def request_response(self) -> None:
        if self.speaking is not None:
            self._response_wanted = True  # one response at a time: ask again when this one is done
        else:
            self.send(rt.response_create())

    def cancel(self, response_id: str) -> None:
        """Stop a response (once): its late audio is dropped from now on."""
        if response_id in self._cancelled:
            return
        self._cancelled.add(response_id)
        if self.speaking is not None and response_id == self.speaking.id:
            self.send(rt.response_cancel(response_id))

    def cancelled(self, response_id: str) -> bool:
        return response_id in self._cancelled

    # -- the connection -----------------------------------------------------------------------
    async def run(self) -> None:
        """Until the call is over: connect, and reconnect after a drop, restoring the session."""
        first = True
        while True:
            try:
                model = await self._connector.connect(self._ids)
            except ModelUnavailable as exc:
                log.error("%s; hanging up", exc, extra=self._ids.dims())
                await self._handler.model_failed("model_unavailable")
                return
            pump: asyncio.Task[None] | None = None
            try:
                await self._start(model, greet=first)
                first = False
                pump = asyncio.create_task(
                    self._pump(model), name=f"model-send:{self._ids.call_connection_id}"
                )
                async for msg in model:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._on_message(msg.data)
            except SessionRejected as exc:  # our configuration is wrong: every retry would fail the same way
                log.error("model rejected the session: %s; hanging up", exc, extra=self._ids.dims())
                self._telemetry.event("ModelSessionRejected", self._ids, error=str(exc))
                await self._handler.model_failed("model_session_rejected")
                return
            except (ConnectionError, TimeoutError):
                pass  # lost while starting or sending: handled like a close below
            finally:
                self._socket = None
                if pump is not None:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
                await model.close()  # this loop owns the socket, also when the call is cancelled
            self._forget_session()
            self.reconnects += 1
            log.warning(
                "model socket lost mid-call (close code %s); reconnecting",
                model.close_code,
                extra=self._ids.dims(),
            )
            if self.reconnects > MAX_RECONNECTS:
                await self._handler.model_failed("model_unstable")
                return

    def _forget_session(self) -> None:
        """What was addressed to the lost session is stale; only the caller's audio carries over."""
        kept = [(event, audio) for event, audio in self._outbox if audio]
        self._outbox.clear()
        self._outbox.extend(kept)
        if self.speaking is not None:
            self._response_wanted = True  # the answer was cut off: ask the new session to give it
            self.speaking._end()
            self.speaking = None

    async def _start(self, model: ModelSocket, *, greet: bool) -> None:
        if greet:
            self._telemetry.event("ModelSessionStarted", self._ids, measurements=None, **self._started)
        else:
            self._telemetry.event("ModelReconnected", self._ids, reconnects=self.reconnects)
            self._telemetry.metric("model_reconnects", 1, self._ids)
        config = self._config
        if not greet:  # the conversation itself comes back as items below, never as instructions
            config = dataclasses.replace(config, instructions=config.instructions + RESTORED)
        await model.send_str(rt.session_update(config))
        await self._session_ready(model)
        if not greet:  # caller speech goes back as the user's turns: it never gains instruction authority
            for role, text in self._handler.conversation():
                await model.send_str(rt.message_item(role, text))
        if greet or self._response_wanted:
            self._response_wanted = False
            await model.send_str(rt.response_create())
        self._socket = model  # from now on the pump sends, starting with the audio held meanwhile

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
                    self._handler.on_malformed(exc.reason)
                    continue
                if isinstance(event, rt.SessionReady):
                    return
                if isinstance(event, rt.ServerError):
                    raise SessionRejected(f"{event.code}: {event.message}")
                await self._on_event(event)  # anything else is routed as usual
        raise ConnectionError("the model closed the socket before confirming the session")

    async def _pump(self, model: ModelSocket) -> None:
        """The one sender: the outbox, in order. An event leaves the outbox only once it was sent."""
        try:
            while True:
                while not self._outbox:
                    self._wake.clear()
                    await self._wake.wait()
                await model.send_str(self._outbox[0][0])
                self._outbox.popleft()
        except ConnectionError:  # the reader sees the socket close and reconnects
            with contextlib.suppress(ConnectionError):
                await model.close()

    # -- what the model says ------------------------------------------------------------------
    async def _on_message(self, text: bytes) -> None:
        try:
            event = rt.parse_server_event(text)
        except rt.MalformedEvent as exc:
            self._handler.on_malformed(exc.reason)
            return
        await self._on_event(event)

    async def _on_event(self, event: rt.ServerEvent) -> None:
        if isinstance(event, rt.ResponseCreated):
            self.speaking = Speech(self, event.response_id)
        elif isinstance(event, rt.ResponseDone):
            if self.speaking is not None and event.response_id == self.speaking.id:
                self.speaking._end()
                self.speaking = None
            if self._response_wanted and self.speaking is None:
                self._response_wanted = False
                self.send(rt.response_create())
        await self._handler.on_model_event(event)
