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
import time
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
CONTINUED = "\n\nThis call continues from an earlier session; the conversation so far follows. Continue naturally; do not greet again."
ROLLOVER_WINDOW_S = 120.0  # a session is rolled over at the first quiet moment this close to its limit
ROLLOVER_MARGIN_S = 10.0  # ... or, quiet or not, this close
QUIET_POLL_S = 0.25


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

    def quiet(self) -> bool:
        """Nobody is speaking or waiting for anything: the session can change hands unnoticed."""
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
        greet: bool = True,  # the assistant speaks first (False: it waits for the caller)
        session_max_seconds: float = 1800.0,  # the service's limit: roll over to a fresh session before it
    ) -> None:
        self._greet = greet
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
        self._wanted: deque[str | None] = deque()  # responses asked for meanwhile (their instructions)
        self._next_speech: list[asyncio.Future[Speech]] = []  # waiting for the next response to start
        self._cancelled: set[str] = set()
        self._session_max_s = session_max_seconds
        self._next_socket: ModelSocket | None = None  # a fresh session, configured, to roll over to
        self.rollovers = 0

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
    def request_response(self, instructions: str | None = None) -> None:
        """A response now, or once the current one is done (one at a time); `instructions` are added
        to the session's for that response only."""
        if self.speaking is not None or self._wanted or self._socket is None:
            if instructions is not None or None not in self._wanted:  # one plain "answer" is enough
                self._wanted.append(instructions)
        else:
            self.send(rt.response_create(self._with_session(instructions)))

    def _with_session(self, instructions: str | None) -> str | None:
        # a response's instructions replace the session's: keep the persona and add the line
        return None if instructions is None else f"{self._config.instructions}\n\n{instructions}"

    @property
    def busy(self) -> bool:
        """A response is being generated or waits to be asked for."""
        return self.speaking is not None or bool(self._wanted)

    async def next_speech(self) -> Speech:
        """Until the next response starts (whoever asked for it)."""
        future: asyncio.Future[Speech] = asyncio.get_running_loop().create_future()
        self._next_speech.append(future)
        return await future

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
        """Until the call is over: connect, and reconnect after a drop, restoring the session; roll
        over to a fresh session before the service's limit ends this one."""
        first = True
        while True:
            rolled_over = self._next_socket is not None
            if self._next_socket is not None:  # configured and restored already
                model, self._next_socket = self._next_socket, None
            else:
                try:
                    model = await self._connector.connect(self._ids)
                except ModelUnavailable as exc:
                    log.error("%s; hanging up", exc, extra=self._ids.dims())
                    await self._handler.model_failed("model_unavailable")
                    return
            opened = time.monotonic()
            pump: asyncio.Task[None] | None = None
            roller: asyncio.Task[None] | None = None
            try:
                if rolled_over:
                    await self._take_over(model)
                else:
                    await self._start(model, greet=first)
                first = False
                pump = asyncio.create_task(
                    self._pump(model), name=f"model-send:{self._ids.call_connection_id}"
                )
                roller = asyncio.create_task(
                    self._roll_over_in_time(model, opened),
                    name=f"model-rollover:{self._ids.call_connection_id}",
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
                for task in (pump, roller):
                    if task is not None and task is not asyncio.current_task():
                        task.cancel()
                await asyncio.gather(*(t for t in (pump, roller) if t is not None), return_exceptions=True)
                await model.close()  # this loop owns the socket, also when the call is cancelled
            self._forget_session()
            if self._rolling_over():  # closed on purpose: the fresh session takes over
                self.rollovers += 1
                log.info(
                    "model session rolled over after %.0f s",
                    time.monotonic() - opened,
                    extra=self._ids.dims(),
                )
                self._telemetry.event(
                    "ModelSessionRolledOver",
                    self._ids,
                    measurements={"session_s": round(time.monotonic() - opened, 1)},
                    rollovers=self.rollovers,
                    turns=len(self._handler.conversation()),
                )
                continue
            self.reconnects += 1
            log.warning(
                "model socket lost mid-call (close code %s); reconnecting",
                model.close_code,
                extra=self._ids.dims(),
            )
            if self.reconnects > MAX_RECONNECTS:
                await self._handler.model_failed("model_unstable")
                return

    async def _roll_over_in_time(self, model: ModelSocket, opened: float) -> None:
        """Near the service's session limit, at a quiet moment (or at the last one that leaves time),
        open a fresh session with the instructions and the conversation so far, then close this one:
        the reader moves over, and the caller's audio flows on through the outbox, nothing lost."""
        limit = self._session_max_s
        window_at = opened + limit - min(ROLLOVER_WINDOW_S, 0.1 * limit)
        forced_at = opened + limit - min(ROLLOVER_MARGIN_S, 0.05 * limit)
        await asyncio.sleep(max(0.0, window_at - time.monotonic()))
        while True:
            while not self._quiet() and time.monotonic() < forced_at:  # noqa: ASYNC110 - a moment, not an event
                await asyncio.sleep(QUIET_POLL_S)
            turns = len(self._handler.conversation())
            try:
                fresh = await self._connector.connect(self._ids)
            except (
                ModelUnavailable
            ) as exc:  # this session goes on until the service ends it: then a reconnect
                log.warning("model session rollover failed: %s", exc, extra=self._ids.dims())
                return
            try:
                await self._configure(fresh, CONTINUED)
            except (SessionRejected, ConnectionError, TimeoutError) as exc:
                log.warning("model session rollover failed: %s", exc, extra=self._ids.dims())
                await fresh.close()
                return
            if time.monotonic() >= forced_at or (
                self._quiet() and len(self._handler.conversation()) == turns
            ):
                break
            await fresh.close()  # the caller spoke meanwhile, which the fresh session would miss: again
        self._next_socket = fresh
        await model.close()  # ends the reader's loop in `run`, which takes the fresh session

    def _rolling_over(self) -> bool:
        return self._next_socket is not None

    def _quiet(self) -> bool:
        return self.speaking is None and not self._wanted and self._handler.quiet()

    async def _take_over(self, model: ModelSocket) -> None:
        if self._wanted:  # forced in the middle of something: the fresh session gives it
            await model.send_str(rt.response_create(self._with_session(self._wanted.popleft())))
        self._socket = model

    def _forget_session(self) -> None:
        """What was addressed to the lost session is stale; only the caller's audio carries over."""
        kept = [(event, audio) for event, audio in self._outbox if audio]
        self._outbox.clear()
        self._outbox.extend(kept)
        if self.speaking is not None:
            if not self._wanted or self._wanted[0] is not None:
                self._wanted.appendleft(None)  # the answer was cut off: ask the new session to give it
            self.speaking._end()
            self.speaking = None

    async def _start(self, model: ModelSocket, *, greet: bool) -> None:
        if greet:
            self._telemetry.event("ModelSessionStarted", self._ids, measurements=None, **self._started)
        else:
            self._telemetry.event("ModelReconnected", self._ids, reconnects=self.reconnects)
            self._telemetry.metric("model_reconnects", 1, self._ids)
        await self._configure(model, None if greet else RESTORED)
        if greet and self._greet:
            await model.send_str(rt.response_create())
        elif self._wanted:
            await model.send_str(rt.response_create(self._with_session(self._wanted.popleft())))
        self._socket = model  # from now on the pump sends, starting with the audio held meanwhile

    async def _configure(self, model: ModelSocket, note: str | None) -> None:
        """Our session.update, confirmed; with a `note`, the conversation so far comes back as items
        (caller speech as the user's turns: it never gains instruction authority)."""
        config = self._config
        if note is not None:
            config = dataclasses.replace(config, instructions=config.instructions + note)
        await model.send_str(rt.session_update(config))
        await self._session_ready(model)
        if note is not None:
            for role, text in self._handler.conversation():
                await model.send_str(rt.message_item(role, text))

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
            waiting, self._next_speech = self._next_speech, []
            for future in waiting:
                if not future.done():
                    future.set_result(self.speaking)
        elif isinstance(event, rt.ResponseDone):
            if self.speaking is not None and event.response_id == self.speaking.id:
                self.speaking._end()
                self.speaking = None
            if self._wanted and self.speaking is None:
                self.send(rt.response_create(self._with_session(self._wanted.popleft())))
        await self._handler.on_model_event(event)
