"""Twilio Voice on one machine: an inbound call from the voice webhook to the end of its stream.

`place_call` does what Twilio does when a number rings: it POSTs the signed voice webhook
(twilio-openai.md §1.1, §2), reads the TwiML answer and runs its verbs in order. `<Connect><Stream>`
dials the media stream (`MediaStream`), posts the signed `stream-started`/`stream-stopped` status
callbacks (§1.3), and blocks until the stream ends; the verbs after it run only then (§1.2). The REST
stand-in's call updates (§3.6) end the call (`Status=completed`: `stop`, then close) or replace its
TwiML (`Twiml=<Response><Dial>…`: the stream stops, the new verbs run).

Deliberate differences from Twilio: `ws://` stream URLs are dialled too (local tests); `<Say>` takes
no time; `<Dial>` records the transfer target and ends the emulated call (no second leg); status
callbacks are always POSTed. What Twilio's debugger would log is in `TwilioCall.errors`.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from common.twilio_auth import twilio_signature

from . import twiml
from .media_stream import RATE, EchoedMark, HeardAudio, MediaStream, new_sid
from .rest import RestError, TwilioRestStandIn

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
WEBHOOK_TIMEOUT_S = 15  # Twilio's total wait for a webhook answer (§1.1)
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html", "text/plain"})
# Filled by Twilio from number databases; empty for numbers it knows nothing about, and signed anyway.
_GEO = ("City", "State", "Zip", "Country")


@dataclass(frozen=True)
class TwilioError:
    code: int  # Twilio's error code (twilio.com/docs/api/errors/<code>)
    detail: str


@dataclass(frozen=True)
class StreamCallback:
    event: str  # StreamEvent: stream-started | stream-stopped | stream-error
    params: dict[str, str]
    status: int  # what the callback URL answered (0: unreachable)
    at: float = field(default_factory=time.monotonic)


@dataclass(eq=False)
class TwilioCall:
    sid: str
    account_sid: str
    from_: str
    to: str
    webhook_url: str
    status: str = "ringing"  # CallStatus: ringing, in-progress, then completed | busy | no-answer
    end_reason: str | None = None  # caller_hung_up, completed_by_api, transferred, rejected, ...
    twiml: list[str] = field(default_factory=list)  # every document it ran: the webhook's, then updates'
    said: list[str] = field(default_factory=list)  # what <Say> read to the caller
    stream: MediaStream | None = None  # the latest <Connect><Stream>
    stream_callbacks: list[StreamCallback] = field(default_factory=list)
    transferred_to: str | None = None
    errors: list[TwilioError] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    answered: datetime | None = None
    finished: datetime | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # over, callbacks sent
    _settled: asyncio.Event = field(default_factory=asyncio.Event)  # streaming, or over
    _document: int = 0  # which TwiML document may run; a REST update supersedes the running one
    _runner: asyncio.Task[None] | None = None

    # -- the caller -------------------------------------------------------------------------------
    def say(self, pcm: bytes, rate: int = RATE) -> asyncio.Future[None]:
        return self.live_stream.say(pcm, rate)

    async def dtmf(self, digit: str) -> None:
        await self.live_stream.dtmf(digit)

    async def hang_up(self) -> None:
        await self._end("caller_hung_up")

    # -- what happened ----------------------------------------------------------------------------
    @property
    def live_stream(self) -> MediaStream:
        if self.stream is None:
            raise RuntimeError(f"call {self.sid} has no media stream (TwiML: {self.twiml})")
        return self.stream

    def heard(self) -> list[HeardAudio]:
        return self.live_stream.heard()

    @property
    def marks(self) -> list[EchoedMark]:
        return self.live_stream.marks

    @property
    def clears(self) -> list[float]:
        return self.live_stream.clears

    def write_recording(self, path: Path, *, since: float | None = None) -> float:
        return self.live_stream.write_recording(path, since=since)

    async def wait_ended(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            await self.ended.wait()

    def resource(self) -> dict[str, Any]:
        """The call as the REST API shows it (the fields the product may read)."""
        duration = None
        if self.answered is not None and self.finished is not None:
            duration = str(int((self.finished - self.answered).total_seconds()))
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "from": self.from_,
            "to": self.to,
            "status": self.status,
            "direction": "inbound",
            "api_version": API_VERSION,
            "parent_call_sid": None,
            "date_created": format_datetime(self.created),
            "date_updated": format_datetime(datetime.now(UTC)),
            "start_time": _rfc2822(self.answered),
            "end_time": _rfc2822(self.finished),
            "duration": duration,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}.json",
        }

    # -- lifecycle --------------------------------------------------------------------------------
    def _answer(self) -> None:
        if self.status == "ringing":
            self.status, self.answered = "in-progress", datetime.now(UTC)

    def _finish(self, reason: str, status: str = "completed") -> None:
        """Decide that the call is over (the first reason wins); `ended` follows once it has wound down."""
        if self.end_reason is None:
            self.end_reason, self.status, self.finished = reason, status, datetime.now(UTC)

    async def _end(self, reason: str) -> None:
        self._finish(reason)
        if self.stream is not None:
            await self.stream.stop()
        if self._runner is not None:
            await self._runner
        self._close()

    def _close(self) -> None:
        self.ended.set()
        self._settled.set()


def _rfc2822(moment: datetime | None) -> str | None:
    return None if moment is None else format_datetime(moment)


class TwilioEmulator:
    def __init__(self, *, auth_token: str | None = None, account_sid: str | None = None) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.rest = TwilioRestStandIn(self.account_sid, self.auth_token, self._update_call)
        self.calls: dict[str, TwilioCall] = {}
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve the REST stand-in; returns its base URL (in place of https://api.twilio.com)."""
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_S))
        return await self.rest.serve(host, port)

    def settings_env(self) -> dict[str, str]:
        """The settings that point the product at this emulator instead of Twilio."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_API_BASE_URL": self.rest.base_url,
        }

    async def close(self) -> None:
        for call in self.calls.values():
            if call.stream is not None:
                await call.stream.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        await self.rest.close()

    async def __aenter__(self) -> TwilioEmulator:
        await self.serve()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- a call -----------------------------------------------------------------------------------
    async def place_call(
        self, webhook_url: str, from_: str = "+14155550123", to: str = "+18005550100"
    ) -> TwilioCall:
        """Ring the number whose voice webhook is `webhook_url`; returns once the call streams
        media, or is over (rejected, hung up, an application error)."""
        call = TwilioCall(new_sid("CA"), self.account_sid, from_, to, webhook_url)
        self.calls[call.sid] = call
        verbs = await self._fetch_twiml(call)
        if verbs is None:
            call._finish("application_error")
            call._close()
        else:
            call._runner = self._spawn(self._run(call, verbs, call._document))
            await call._settled.wait()
        return call

    async def _fetch_twiml(self, call: TwilioCall) -> list[twiml.Verb] | None:
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": call.from_,
            "To": call.to,
            "Caller": call.from_,
            "Called": call.to,
            **{f"{party}{part}": "" for party in ("From", "To", "Caller", "Called") for part in _GEO},
        }
        try:
            status, content_type, body = await self._post_signed(call.webhook_url, params)
        except (aiohttp.ClientError, TimeoutError) as exc:
            call.errors.append(TwilioError(11205, f"HTTP connection failure: {exc!r}"))
            return None
        if status != 200:
            call.errors.append(TwilioError(11200, f"HTTP retrieval failure: the webhook answered {status}"))
            return None
        if content_type not in TWIML_CONTENT_TYPES:
            call.errors.append(TwilioError(12300, f"Invalid Content-Type: {content_type!r}"))
            return None
        try:
            verbs = twiml.parse(body)
        except twiml.TwimlError as exc:
            call.errors.append(TwilioError(12100, str(exc)))
            return None
        call.twiml.append(body.decode("utf-8", "replace"))
        return verbs

    async def _post_signed(self, url: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        """POST a form signed like every Twilio webhook; returns status, content type, body."""
        assert self._http is not None, "serve() first"
        headers = {
            "X-Twilio-Signature": twilio_signature(self.auth_token, url, params),
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "User-Agent": "TwilioProxy/1.1",
        }
        async with self._http.post(url, data=params, headers=headers) as response:
            return response.status, response.content_type, await response.read()

    async def _run(self, call: TwilioCall, verbs: list[twiml.Verb], document: int) -> None:
        """Run one TwiML document, verb after verb, until it ends, the call ends or an update
        supersedes it."""
        try:
            for verb in verbs:
                if call._document != document:
                    return  # superseded: the new document's runner ends the call
                if call.end_reason is not None:
                    break
                if isinstance(verb, twiml.Reject):  # unanswered: busy or no-answer (Twilio's <Reject> page)
                    call._finish("rejected", "busy" if verb.reason == "busy" else "no-answer")
                    break
                call._answer()
                if isinstance(verb, twiml.Say):
                    call.said.append(verb.text)
                elif isinstance(verb, twiml.Stream):
                    await self._stream(call, verb)
                elif isinstance(verb, twiml.Dial):
                    call.transferred_to = verb.number
                    call._finish("transferred")
                elif isinstance(verb, twiml.Hangup):
                    call._finish("hung_up_by_twiml")
                else:
                    log.info("call %s: <%s> is not emulated; skipped", call.sid, verb.tag)
            if call._document == document:
                call._finish("twiml_ended")  # nothing left to run: Twilio hangs up
                call._close()
        finally:
            call._settled.set()  # place_call never waits on a runner that is gone

    async def _stream(self, call: TwilioCall, verb: twiml.Stream) -> None:
        stream = MediaStream(call.account_sid, call.sid, name=verb.name)
        parts = urlsplit(verb.url)
        if parts.scheme not in ("wss", "ws") or parts.query or parts.fragment:
            call.errors.append(TwilioError(31920, "the stream url must be wss:// with no query string"))
            await self._stream_callback(call, verb, stream, "stream-error", "invalid url")
            return
        call.stream = stream
        try:
            await stream.connect(verb.url, verb.parameters, auth_token=self.auth_token)
        except aiohttp.WSServerHandshakeError as exc:
            call.errors.append(TwilioError(31920, f"Stream - WebSocket - Handshake Error: {exc.status}"))
            await self._stream_callback(call, verb, stream, "stream-error", "handshake error")
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            call.errors.append(TwilioError(31901, f"Stream - WebSocket - Connection Timeout: {exc!r}"))
            await self._stream_callback(call, verb, stream, "stream-error", "connection error")
            return
        call._settled.set()
        await self._stream_callback(call, verb, stream, "stream-started")
        await stream.wait_closed(timeout=None)
        if not stream.stop_sent:  # the media host closed it: Twilio logs that, then runs on
            call.errors.append(TwilioError(31921, "Stream - WebSocket - Close Error"))
        await stream.stop()
        await self._stream_callback(call, verb, stream, "stream-stopped")

    async def _stream_callback(
        self, call: TwilioCall, verb: twiml.Stream, stream: MediaStream, event: str, error: str = ""
    ) -> None:
        if verb.status_callback is None:
            return
        params = {
            "AccountSid": call.account_sid,
            "CallSid": call.sid,
            "StreamSid": stream.stream_sid,
            "StreamName": verb.name or stream.stream_sid,
            "StreamEvent": event,
            "Timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            **({"StreamError": error} if error else {}),
        }
        try:
            status = (await self._post_signed(verb.status_callback, params))[0]
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("stream status callback %s unreachable: %r", verb.status_callback, exc)
            status = 0
        call.stream_callbacks.append(StreamCallback(event, params, status))

    # -- REST updates -----------------------------------------------------------------------------
    def _update_call(self, sid: str, form: Mapping[str, str]) -> dict[str, Any] | None:
        call = self.calls.get(sid)
        if call is None:
            return None
        status, document = form.get("Status"), form.get("Twiml")
        if "Url" in form or (status is None) == (document is None):
            raise RestError(400, 21200, "The stand-in takes either Status or Twiml")
        if call.end_reason is not None:
            if document is not None:
                raise RestError(400, 21220, "Call is not in-progress. Cannot redirect.")
            return None  # an ended call: 404, which a client treats as done (§3.6)
        if document is not None:
            try:
                verbs = twiml.parse(document)
            except twiml.TwimlError as exc:
                raise RestError(400, 21200, f"Twiml: {exc}") from None
            call.twiml.append(document)
            call._document += 1
            call._runner = self._spawn(self._redirect(call, verbs, call._document, call._runner))
        elif status == "completed" or (status == "canceled" and call.status == "ringing"):
            call._finish("completed_by_api", status)
            self._spawn(call._end("completed_by_api"))
        elif status != "canceled":  # canceled leaves an answered call alone
            raise RestError(400, 21200, f"Status {status!r}: the stand-in takes completed or canceled")
        return call.resource()

    async def _redirect(
        self, call: TwilioCall, verbs: list[twiml.Verb], document: int, previous: asyncio.Task[None] | None
    ) -> None:
        """New TwiML replaces the running document: its stream stops first, as the call leaves <Connect>."""
        if call.stream is not None:
            await call.stream.stop()
        if previous is not None:
            await previous  # its stream-stopped callback goes out before anything the new one does
        await self._run(call, verbs, document)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
