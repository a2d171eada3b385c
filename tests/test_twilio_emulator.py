"""The Twilio emulator against a small in-test product, over real sockets on 127.0.0.1.

The product here answers the voice webhook with TwiML, takes the media stream at /ws/twilio and
checks every signature with common.twilio_auth; it reads what the emulator streams with the media
host's own parser (media_host.twilio_media) and talks back with its builders, so both sides of the
protocol are the product's. Each test gives the stream a script (echo audio, marks, a clear, ...).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from common.twilio_auth import sid_pattern, valid_twilio_signature
from emulators.twilio import twiml
from emulators.twilio.emulator import TwilioCall, TwilioEmulator
from emulators.twilio.media_stream import FRAME_BYTES, RATE, SILENCE, MediaStream
from media_host import twilio_media as tm
from media_host.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from tests.signals import dominant_frequency, tone

AUTH_TOKEN = "5f4dcc3b5aa765d61d8327deb882cf99"  # the shape of a real auth token, not a real one
PARAMETERS = {"callToken": "v1.abc.def", "profile": "bistro"}
TRANSFER_TARGET = "+15551234567"


@dataclass
class FakeProduct:
    """The product's side: records everything it is sent and whether each signature held."""

    twiml: str = ""  # the webhook's answer; {ws} and {callback} are filled in
    content_type: str = "text/xml"
    http_status: int = 200
    script: Callable[[FakeProduct, web.WebSocketResponse], Awaitable[None]] | None = None
    webhooks: list[tuple[dict[str, str], bool]] = field(default_factory=list)
    callbacks: list[tuple[dict[str, str], bool]] = field(default_factory=list)
    upgrade_signed: bool | None = None
    messages: list[tuple[float, tm.InboundMessage]] = field(default_factory=list)
    stream_sid: str = ""
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/twilio/voice", self.voice)
        app.router.add_post("/api/twilio/stream-status", self.stream_status)
        app.router.add_get("/ws/twilio", self.media)
        return app

    async def signed_form(self, request: web.Request) -> tuple[dict[str, str], bool]:
        form = {k: str(v) for k, v in (await request.post()).items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        return form, valid_twilio_signature(AUTH_TOKEN, str(request.url), form, signature)

    async def voice(self, request: web.Request) -> web.Response:
        self.webhooks.append(await self.signed_form(request))
        body = self.twiml.replace("{ws}", self.base.replace("http", "ws") + "/ws/twilio").replace(
            "{callback}", self.base
        )
        return web.Response(text=body, content_type=self.content_type, status=self.http_status)

    async def stream_status(self, request: web.Request) -> web.Response:
        self.callbacks.append(await self.signed_form(request))
        return web.Response(status=204)

    async def media(self, request: web.Request) -> web.WebSocketResponse:
        signed_url = str(request.url.with_scheme("ws"))
        signature = request.headers.get("X-Twilio-Signature", "")
        self.upgrade_signed = valid_twilio_signature(AUTH_TOKEN, signed_url, {}, signature)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reader = asyncio.create_task(self.read(ws))
        script = asyncio.create_task(self.run_script(ws))
        await reader
        script.cancel()
        return ws

    async def run_script(self, ws: web.WebSocketResponse) -> None:
        if self.script is not None:
            await until(lambda: bool(self.stream_sid))
            await self.script(self, ws)

    async def read(self, ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            message = tm.parse_inbound(msg.data)
            self.messages.append((time.monotonic(), message))
            if isinstance(message, tm.Start):
                self.stream_sid = message.stream_sid

    def of(self, kind: type[tm.InboundMessage]) -> list[tuple[float, tm.InboundMessage]]:
        return [(at, m) for at, m in self.messages if isinstance(m, kind)]

    def mark_names(self) -> list[str]:
        return [m.name for _, m in self.messages if isinstance(m, tm.Mark)]


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def stream_twiml(after: str = "", callback: bool = False) -> str:
    status = ' statusCallback="{callback}/api/twilio/stream-status"' if callback else ""
    parameters = "".join(f'<Parameter name="{k}" value="{v}"/>' for k, v in PARAMETERS.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
        f'<Stream url="{{ws}}"{status}>{parameters}</Stream></Connect>{after}</Response>'
    )


@pytest.fixture
async def product(aiohttp_server: Callable[[web.Application], Awaitable[TestServer]]) -> FakeProduct:
    fake = FakeProduct(twiml=stream_twiml())
    server = await aiohttp_server(fake.app())
    fake.base = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
async def emulator(product: FakeProduct) -> AsyncIterator[TwilioEmulator]:
    """Closed before the product's server, as its calls end first."""
    async with TwilioEmulator(auth_token=AUTH_TOKEN) as twilio:
        yield twilio


async def ring(emulator: TwilioEmulator, product: FakeProduct) -> TwilioCall:
    return await emulator.place_call(product.base + "/api/twilio/voice", "+14155550123", "+18005550100")


def ulaw_tone(seconds: float, freq: float = 440.0) -> bytes:
    return pcm16_to_ulaw(tone(freq, seconds, RATE))


def heard_seconds(call: TwilioCall) -> float:
    return sum(len(a.ulaw) for a in call.heard()) / RATE


# -- the webhook and the stream ----------------------------------------------------------------------
async def test_signed_webhook_then_signed_stream_with_parameters_and_20ms_media(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    call = await ring(emulator, product)

    ((form, signed),) = product.webhooks
    assert signed
    assert form["CallSid"] == call.sid and re.fullmatch(sid_pattern("CA"), call.sid)
    assert (form["AccountSid"], form["CallStatus"], form["Direction"]) == (
        emulator.account_sid,
        "ringing",
        "inbound",
    )
    assert (form["From"], form["To"], form["Caller"], form["Called"]) == ("+14155550123", "+18005550100") * 2
    assert form["ApiVersion"] == "2010-04-01" and form["CalledCity"] == ""  # blank values are sent and signed

    await until(lambda: len(product.of(tm.Media)) >= 1)
    assert product.upgrade_signed
    connected, start = product.messages[0][1], product.messages[1][1]
    assert isinstance(connected, tm.Connected) and isinstance(start, tm.Start)
    assert (start.call_sid, start.account_sid) == (call.sid, emulator.account_sid)
    assert start.custom_parameters == PARAMETERS
    assert start.tracks == ("inbound",) and start.media_format == tm.MULAW_8K_MONO
    assert call.status == "in-progress" and call.live_stream.stream_sid == start.stream_sid

    await asyncio.sleep(1.0)
    media = [(at, m) for at, m in product.of(tm.Media) if isinstance(m, tm.Media)]
    first = media[0][0]
    in_one_second = [m for at, m in media if at < first + 1.0]
    assert 45 <= len(in_one_second) <= 51  # 50 a second, give or take scheduling
    assert [m.chunk for _, m in media] == list(range(1, len(media) + 1))
    assert [m.timestamp for _, m in media] == [20 * i for i in range(len(media))]
    assert all(m.payload == SILENCE and m.track == "inbound" for _, m in media)  # the caller says nothing


async def test_the_callers_speech_is_resampled_to_mulaw_8k_and_recorded(
    emulator: TwilioEmulator, product: FakeProduct, tmp_path: Path
) -> None:
    async def echo(product: FakeProduct, ws: web.WebSocketResponse) -> None:
        """Plays the caller's voice back, as a media host would play the assistant's."""
        sent = 0
        while True:
            speech = [
                m.payload for _, m in product.of(tm.Media) if isinstance(m, tm.Media) and m.payload != SILENCE
            ]
            if len(speech) > sent:
                await ws.send_str(tm.media(product.stream_sid, b"".join(speech[sent:])))
                sent = len(speech)
            await asyncio.sleep(0.01)

    product.script = echo
    call = await ring(emulator, product)
    await asyncio.wait_for(call.say(tone(440, 0.3, 24_000), rate=24_000), 2)
    await call.live_stream.wait_until(lambda: heard_seconds(call) >= 0.3)
    await asyncio.sleep(max(0.0, call.heard()[-1].end - time.monotonic()))  # on a busy machine, all played

    speech = b"".join(
        m.payload for _, m in product.of(tm.Media) if isinstance(m, tm.Media) and m.payload != SILENCE
    )
    assert len(speech) == 15 * FRAME_BYTES  # 0.3 s of 20 ms frames
    assert abs(dominant_frequency(ulaw_to_pcm16(speech), RATE) - 440) < 10
    assert call.live_stream.spoken[0][0] <= call.heard()[0].start  # heard after it was said

    seconds = call.write_recording(tmp_path / "call.wav")
    with wave.open(str(tmp_path / "call.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, RATE)
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert seconds == pytest.approx(len(stereo) / RATE) and 0.3 <= seconds < 0.6
    loud = (np.abs(stereo) > 1000).sum(axis=0) / RATE
    assert loud[0] == pytest.approx(0.3, abs=0.03) and loud[1] == pytest.approx(0.3, abs=0.03)
    await call.hang_up()


# -- marks and clear ---------------------------------------------------------------------------------
async def test_a_mark_is_echoed_once_the_audio_before_it_has_played(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    sent_at: list[float] = []

    async def play(product: FakeProduct, ws: web.WebSocketResponse) -> None:
        sent_at.append(time.monotonic())
        await ws.send_str(tm.media(product.stream_sid, ulaw_tone(0.3)))
        await ws.send_str(tm.mark(product.stream_sid, "first"))
        await ws.send_str(tm.media(product.stream_sid, ulaw_tone(0.1)))
        await ws.send_str(tm.mark(product.stream_sid, "second"))

    product.script = play
    call = await ring(emulator, product)
    await until(lambda: len(product.mark_names()) == 2)

    (first_at, _), (second_at, _) = product.of(tm.Mark)
    assert product.mark_names() == ["first", "second"]
    assert 0.3 <= first_at - sent_at[0] < 0.37
    assert 0.4 <= second_at - sent_at[0] < 0.47
    assert [(m.name, m.played) for m in call.marks] == [("first", True), ("second", True)]
    assert heard_seconds(call) == pytest.approx(0.4)
    assert 0 <= call.live_stream.assistant_quiet_for() < 0.1
    await call.hang_up()


async def test_clear_drops_unplayed_audio_and_echoes_every_outstanding_mark_at_once(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    cleared_at: list[float] = []

    async def interrupted(product: FakeProduct, ws: web.WebSocketResponse) -> None:
        for n in range(10):  # 1 s of audio, a mark after every 100 ms
            await ws.send_str(tm.media(product.stream_sid, ulaw_tone(0.1)))
            await ws.send_str(tm.mark(product.stream_sid, f"m{n}"))
        await asyncio.sleep(0.25)
        cleared_at.append(time.monotonic())
        await ws.send_str(tm.clear(product.stream_sid))
        await until(lambda: len(product.mark_names()) == 10)
        await ws.send_str(tm.media(product.stream_sid, ulaw_tone(0.1, 880)))  # the next response

    product.script = interrupted
    call = await ring(emulator, product)
    await until(lambda: len(product.mark_names()) == 10 and heard_seconds(call) > 0.3)

    echoes = product.of(tm.Mark)
    assert product.mark_names() == [f"m{n}" for n in range(10)]
    assert [at < cleared_at[0] for at, _ in echoes[:2]] == [True, True]  # played before the clear
    assert all(0 <= at - cleared_at[0] < 0.05 for at, _ in echoes[2:])  # the rest at once, after it
    assert [m.played for m in call.marks] == [True, True] + [False] * 8
    (clear,) = call.clears

    heard = call.heard()
    before = [a for a in heard if a.start < clear]
    assert all(a.end <= clear for a in before)  # nothing sent before the clear plays after it
    assert sum(len(a.ulaw) for a in before) / RATE == pytest.approx(0.25, abs=0.03)
    after = heard[len(before) :]
    assert len(after) == 1 and after[0].start >= clear and len(after[0].ulaw) == 800
    await call.hang_up()


async def test_what_twilio_would_refuse_is_recorded_as_a_warning_and_ignored(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    async def sloppy(product: FakeProduct, ws: web.WebSocketResponse) -> None:
        other = "MZ" + "0" * 32
        await ws.send_str(tm.media(other, ulaw_tone(0.1)))  # another stream's sid
        await ws.send_bytes(ulaw_tone(0.1))  # binary
        await ws.send_str(json.dumps({"event": "mark", "streamSid": product.stream_sid}))  # no mark.name
        await ws.send_str(json.dumps({"event": "clear", "streamSid": product.stream_sid, "extra": 1}))
        await ws.send_str("not json")

    product.script = sloppy
    call = await ring(emulator, product)
    await call.live_stream.wait_until(lambda: len(call.live_stream.warnings) == 5)

    assert [w.code for w in call.live_stream.warnings] == [31951, 31950, 31951, 31951, 31951]
    assert call.live_stream.warnings[0].reason == "wrong streamSid"
    assert call.heard() == [] and call.marks == [] and call.clears == []
    assert not call.live_stream.closed and call.live_stream.received == []
    await call.hang_up()


# -- the call's life ---------------------------------------------------------------------------------
async def test_dtmf_hang_up_and_signed_stream_status_callbacks(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    product.twiml = stream_twiml(callback=True)
    call = await ring(emulator, product)
    await call.dtmf("7")
    with pytest.raises(ValueError, match="DTMF"):
        await call.dtmf("x")
    await until(lambda: bool(product.of(tm.Dtmf)))
    await call.hang_up()

    assert (call.status, call.end_reason) == ("completed", "caller_hung_up")
    await until(lambda: isinstance(product.messages[-1][1], tm.Stop))
    assert [m.digit for _, m in product.of(tm.Dtmf) if isinstance(m, tm.Dtmf)] == ["7"]
    assert call.live_stream.closed
    assert [(form["StreamEvent"], signed) for form, signed in product.callbacks] == [
        ("stream-started", True),
        ("stream-stopped", True),
    ]
    started = product.callbacks[0][0]
    assert (started["CallSid"], started["AccountSid"]) == (call.sid, emulator.account_sid)
    assert started["StreamSid"] == started["StreamName"] == call.live_stream.stream_sid
    assert started["Timestamp"].endswith("Z")
    assert [c.status for c in call.stream_callbacks] == [204, 204]


async def test_when_the_media_host_closes_the_stream_the_twiml_after_connect_runs(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    async def close(product: FakeProduct, ws: web.WebSocketResponse) -> None:
        await ws.close()

    product.twiml = stream_twiml(after=f"<Say>Transferring you.</Say><Dial>{TRANSFER_TARGET}</Dial>")
    product.script = close
    call = await ring(emulator, product)
    await call.wait_ended()

    assert (call.end_reason, call.transferred_to, call.said) == (
        "transferred",
        TRANSFER_TARGET,
        ["Transferring you."],
    )
    assert [e.code for e in call.errors] == [31921]  # Twilio logs the server's close
    assert not any(isinstance(m, tm.Stop) for _, m in product.messages)  # the socket was gone


@pytest.mark.parametrize(
    ("twiml", "status"),
    [
        ('<Response><Reject reason="busy"/></Response>', "busy"),
        ("<Response><Reject/></Response>", "no-answer"),
    ],
)
async def test_a_rejected_call_is_never_answered(
    emulator: TwilioEmulator, product: FakeProduct, twiml: str, status: str
) -> None:
    product.twiml = twiml
    call = await ring(emulator, product)
    assert call.ended.is_set() and (call.status, call.end_reason) == (status, "rejected")
    assert call.stream is None and call.resource()["start_time"] is None


@pytest.mark.parametrize(
    ("answer", "code"),  # (HTTP status, Content-Type, body), and the error Twilio logs
    [
        ((500, "text/xml", "<Response/>"), 11200),
        ((200, "application/json", "{}"), 12300),
        ((200, "text/xml", "<Response><Say>"), 12100),
    ],
)
async def test_a_webhook_twilio_cannot_use_is_an_application_error(
    emulator: TwilioEmulator, product: FakeProduct, answer: tuple[int, str, str], code: int
) -> None:
    product.http_status, product.content_type, product.twiml = answer
    call = await ring(emulator, product)
    assert call.ended.is_set() and call.end_reason == "application_error"
    assert [e.code for e in call.errors] == [code]


async def test_an_unreachable_webhook_is_an_application_error(
    emulator: TwilioEmulator, unused_tcp_port: int
) -> None:
    call = await emulator.place_call(f"http://127.0.0.1:{unused_tcp_port}/api/twilio/voice")
    assert call.end_reason == "application_error" and [e.code for e in call.errors] == [11205]


async def test_a_stream_url_with_a_query_string_is_refused(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    product.twiml = stream_twiml(callback=True).replace("{ws}", "{ws}?token=x")
    call = await ring(emulator, product)
    await call.wait_ended()
    assert [e.code for e in call.errors] == [31920] and product.upgrade_signed is None
    assert [(form["StreamEvent"], signed) for form, signed in product.callbacks] == [("stream-error", True)]


# -- the REST stand-in -------------------------------------------------------------------------------
async def update(
    emulator: TwilioEmulator, sid: str, form: dict[str, str], auth: str | None
) -> tuple[int, dict[str, object]]:
    url = f"{emulator.settings_env()['TWILIO_API_BASE_URL']}/2010-04-01/Accounts/{emulator.account_sid}/Calls/{sid}.json"
    headers = {} if auth is None else {"Authorization": auth}
    async with aiohttp.ClientSession() as http, http.post(url, data=form, headers=headers) as response:
        return response.status, await response.json()


def good_auth(emulator: TwilioEmulator) -> str:
    env = emulator.settings_env()  # what the product is configured with
    return aiohttp.encode_basic_auth(env["TWILIO_ACCOUNT_SID"], env["TWILIO_AUTH_TOKEN"])


async def test_rest_refuses_bad_basic_auth_and_unknown_calls(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    call = await ring(emulator, product)
    completed = {"Status": "completed"}

    for auth in (
        None,
        aiohttp.encode_basic_auth(emulator.account_sid, "wrong"),
        aiohttp.encode_basic_auth("AC" + "0" * 32, AUTH_TOKEN),
        "Bearer not-basic",
    ):
        status, body = await update(emulator, call.sid, completed, auth)
        assert (status, body) == (
            401,
            {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            },
        )
    status, body = await update(emulator, "CA" + "0" * 32, completed, good_auth(emulator))
    assert (status, body["code"]) == (404, 20404)
    assert call.status == "in-progress" and not call.live_stream.closed

    assert [r.status for r in emulator.rest.requests] == [401, 401, 401, 401, 404]
    assert emulator.rest.requests[0].form == completed and emulator.rest.requests[0].call_sid == call.sid
    await call.hang_up()


async def test_rest_status_completed_ends_the_call(emulator: TwilioEmulator, product: FakeProduct) -> None:
    call = await ring(emulator, product)
    status, body = await update(emulator, call.sid, {"Status": "completed"}, good_auth(emulator))
    assert status == 200
    assert (body["sid"], body["status"], body["account_sid"]) == (call.sid, "completed", emulator.account_sid)
    await call.wait_ended()
    await until(lambda: isinstance(product.messages[-1][1], tm.Stop))
    assert call.end_reason == "completed_by_api" and call.live_stream.closed

    assert (await update(emulator, call.sid, {"Status": "completed"}, good_auth(emulator)))[1][
        "code"
    ] == 20404
    redirect = {"Twiml": f"<Response><Dial>{TRANSFER_TARGET}</Dial></Response>"}
    assert (await update(emulator, call.sid, redirect, good_auth(emulator)))[1]["code"] == 21220
    found = await emulator.rest.wait_for(lambda r: r.status == 400)
    assert found.form == redirect


async def test_rest_twiml_dial_transfers_the_call_out_of_the_stream(
    emulator: TwilioEmulator, product: FakeProduct
) -> None:
    product.twiml = stream_twiml(callback=True)
    call = await ring(emulator, product)
    dial = {"Twiml": f"<Response><Dial>{TRANSFER_TARGET}</Dial></Response>"}
    assert (await update(emulator, call.sid, {"Status": "ringing"}, good_auth(emulator)))[0] == 400
    status, body = await update(emulator, call.sid, dial, good_auth(emulator))
    assert (status, body["status"]) == (200, "in-progress")
    await call.wait_ended()

    assert (call.end_reason, call.transferred_to) == ("transferred", TRANSFER_TARGET)
    assert call.twiml[-1] == dial["Twiml"] and call.errors == []
    await until(lambda: isinstance(product.messages[-1][1], tm.Stop))
    assert call.live_stream.closed
    assert [form["StreamEvent"] for form, _ in product.callbacks] == ["stream-started", "stream-stopped"]
    assert call.sid == body["sid"]


async def test_rest_takes_only_what_it_emulates(emulator: TwilioEmulator, product: FakeProduct) -> None:
    call = await ring(emulator, product)
    url = f"{emulator.rest.base_url}/2010-04-01/Accounts/{emulator.account_sid}/Calls/{call.sid}.json"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": good_auth(emulator)}) as r,
    ):
        assert (r.status, (await r.json())["code"]) == (405, 20004)
    status, body = await update(emulator, call.sid, {"Url": "https://example.com/twiml"}, good_auth(emulator))
    assert (status, body["code"]) == (400, 21200)
    status, body = await update(emulator, call.sid, {"Twiml": "<Response><Say>"}, good_auth(emulator))
    assert (status, body["code"]) == (400, 21200)
    status, body = await update(emulator, call.sid, {"Status": "canceled"}, good_auth(emulator))
    assert (status, body["status"]) == (200, "in-progress")  # canceled only stops a call still ringing
    assert not call.live_stream.closed
    await call.hang_up()


# -- dialling the stream -----------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "code"), [("/no-such-socket", 31920), (None, 31901)])
async def test_a_stream_that_cannot_be_dialled_is_logged_and_the_twiml_runs_on(
    emulator: TwilioEmulator, product: FakeProduct, unused_tcp_port: int, path: str | None, code: int
) -> None:
    url = (
        f"ws://127.0.0.1:{unused_tcp_port}/ws/twilio"
        if path is None
        else product.base.replace("http", "ws") + path
    )
    product.twiml = stream_twiml(after="<Hangup/>").replace("{ws}", url)
    call = await ring(emulator, product)
    await call.wait_ended()
    assert [e.code for e in call.errors] == [code] and call.end_reason == "hung_up_by_twiml"


async def test_a_stream_opens_without_a_call_signed_or_not(product: FakeProduct) -> None:
    """How the media host's own tests knock on its door: a MediaStream alone, any signature."""
    url = product.base.replace("http", "ws") + "/ws/twilio"
    account, call = "AC" + "1" * 32, "CA" + "2" * 32
    for auth_token, headers, signed in (
        (AUTH_TOKEN, None, True),
        (None, None, False),
        (AUTH_TOKEN, {"X-Twilio-Signature": "forged"}, False),
    ):
        stream = MediaStream(account, call)
        await stream.connect(url, {"callToken": "t"}, auth_token=auth_token, extra_headers=headers)
        await until(lambda: product.upgrade_signed is not None)
        assert product.upgrade_signed is signed
        await stream.stop()
        await stream.wait_closed()
        assert stream.stop_sent and [m.event for m in stream.sent][:2] == ["connected", "start"]
        product.upgrade_signed = None


# -- reading TwiML -----------------------------------------------------------------------------------
def test_twiml_verbs_are_read_in_order() -> None:
    document = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Say> Hello. </Say><Pause length="1"/>'
        '<Connect><Stream url="wss://media.example/ws/twilio" name="leg" statusCallback="https://f.example/s">'
        '<Parameter name="a" value="1"/><Parameter name="b"/></Stream></Connect>'
        "<Dial><Number>+15551234567</Number></Dial><Dial>+15557654321</Dial><Hangup/></Response>"
    )
    assert twiml.parse(document.encode()) == [
        twiml.Say("Hello."),
        twiml.Unsupported("Pause"),
        twiml.Stream("wss://media.example/ws/twilio", {"a": "1", "b": ""}, "leg", "https://f.example/s"),
        twiml.Dial("+15551234567"),
        twiml.Dial("+15557654321"),
        twiml.Hangup(),
    ]


@pytest.mark.parametrize(
    "document",
    [
        "<Response><Say>",
        "<Reponse/>",
        "<Response><Connect><Stream/></Connect></Response>",
        '<Response><Connect><Stream url="wss://m.example/"><Parameter value="1"/></Stream></Connect></Response>',
        "<Response><Dial/></Response>",
        '<Response><Reject reason="maybe"/></Response>',
    ],
)
def test_what_is_not_twiml_is_refused(document: str) -> None:
    with pytest.raises(twiml.TwimlError):
        twiml.parse(document)
