"""The media host's Twilio leg over real sockets: the Twilio emulator on one side, a scripted model on
the other, and a small stand-in for our voice webhook that answers with the TwiML the control plane
gives (a `<Connect><Stream>` with a per-call token)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from common.twilio_auth import mint_call_token, twilio_signature
from common.twiml import CONTENT_TYPE, connect_stream
from emulators.serving import serve
from emulators.twilio.emulator import TwilioCall, TwilioEmulator
from emulators.twilio.media_stream import MediaStream, new_sid
from media_host.app import create_app
from media_host.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from media_host.host import HOST, MediaHost
from media_host.phrases import PHRASES
from media_host.settings import MediaSettings
from media_host.twilio_leg import TwilioLeg
from tests.fake_realtime import FakeRealtime, ModelSocket
from tests.signals import dominant_frequency, snr_against_sine, tone

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
ACCOUNT_SID = "AC" + "1" * 32
FRAME = 160  # 20 ms of μ-law


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TwilioHost:
    server: TestServer
    emulator: TwilioEmulator
    webhook_url: str
    stream_url: str

    @property
    def state(self) -> MediaHost:
        return self.server.app[HOST]

    async def call(self) -> TwilioCall:
        call = await self.emulator.place_call(self.webhook_url)
        assert call.stream is not None, call.twiml
        return call


StartTwilioHost = Callable[..., Awaitable[TwilioHost]]


@pytest.fixture
async def twilio() -> AsyncIterator[TwilioEmulator]:
    async with TwilioEmulator(auth_token=AUTH_TOKEN, account_sid=ACCOUNT_SID) as emulator:
        yield emulator


@pytest.fixture
async def start_twilio_host(
    aiohttp_server: Callable[..., Awaitable[TestServer]], twilio: TwilioEmulator, model: FakeRealtime
) -> AsyncIterator[StartTwilioHost]:
    runners: list[web.AppRunner] = []

    async def start(**env: str) -> TwilioHost:
        port = free_port()
        settings = MediaSettings.from_env(
            {
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_API_BASE_URL": twilio.rest.base_url,
                "MEDIA_HOST_URL": f"ws://127.0.0.1:{port}",
                "AZURE_OPENAI_ENDPOINT": model.url,
                "AZURE_OPENAI_API_KEY": "test-model-key",
                "MODEL_CONNECT_BACKOFF_SECONDS": "0.02",
                **env,
            }
        )
        assert settings.twilio is not None and settings.acs is None  # a Twilio-only host
        server = await aiohttp_server(create_app(settings), port=port)
        stream_url = settings.twilio.stream_url

        async def voice(request: web.Request) -> web.Response:
            """Our voice webhook's answer, as functions/twilio_voice.py gives it."""
            form = await request.post()
            token = mint_call_token(AUTH_TOKEN, str(form["CallSid"]), now=time.time(), ttl_seconds=120)
            document = connect_stream(stream_url, {"caller": "+1415******23", "callToken": token})
            return web.Response(body=document, content_type=CONTENT_TYPE)

        app = web.Application()
        app.router.add_post("/voice", voice)
        runner, base = await serve(app)
        runners.append(runner)
        return TwilioHost(server, twilio, base + "/voice", stream_url)

    yield start
    for runner in runners:
        await runner.cleanup()


def ulaw_tone(freq: float, seconds: float) -> bytes:
    return pcm16_to_ulaw(tone(freq, seconds, 8000))


def appended(socket_: ModelSocket) -> bytes:
    return b"".join(base64.b64decode(e["audio"]) for e in socket_.of_type("input_audio_buffer.append"))


def heard(call: TwilioCall) -> bytes:
    return b"".join(h.ulaw for h in call.heard())


async def test_a_call_passes_mu_law_both_ways_untouched(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host()
    call = await host.call()
    socket_ = await model.socket()
    session = (await socket_.wait_for("session.update"))["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert session["audio"]["output"]["format"] == {"type": "audio/pcmu"}

    speech = ulaw_tone(440, 0.4)
    call.say(tone(440, 0.4, 8000), rate=8000)  # μ-law on the wire, as Twilio sends it
    async with asyncio.timeout(5):
        while speech not in appended(socket_):
            await asyncio.sleep(0.02)

    answer = ulaw_tone(600, 0.5)
    await socket_.speak(
        "resp_1", "item_1", answer, chunk=333
    )  # deltas of any length: μ-law has no half samples
    await call.live_stream.wait_until(lambda: len(heard(call)) >= len(answer))
    assert heard(call)[: len(answer)] == answer
    per_message = FRAME * host.state.settings.playback_chunk_ms // 20  # one mark per message
    await call.live_stream.wait_until(lambda: len(call.marks) >= len(answer) // per_message)
    assert all(m.played for m in call.marks)  # each mark came back once its audio had played

    (state,) = host.state.calls
    assert state.ids.correlation_id == call.sid  # Twilio's CallSid joins the records of both planes
    assert state.ids.caller == "+1415******23"
    await call.hang_up()
    await call.wait_ended()


async def test_barge_in_clears_and_truncates_at_what_was_played(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host(MEDIA_PLAYBACK_LEAD_MS="200")  # frames and marks well ahead of playout
    call = await host.call()
    socket_ = await model.socket()
    long_answer = ulaw_tone(500, 3.0)
    await socket_.speak("resp_A", "item_A", long_answer, done=False)
    await call.live_stream.wait_until(lambda: sum(m.played for m in call.marks) >= 25)  # ~0.5 s played

    await socket_.speech_started()
    truncate = await socket_.wait_for("conversation.item.truncate")
    cancel = await socket_.wait_for("response.cancel")
    await call.live_stream.wait_until(lambda: bool(call.clears))
    await socket_.audio("resp_A", "item_A", ulaw_tone(500, 0.5))  # late audio of the interrupted answer
    await socket_.speak("resp_B", "item_B", ulaw_tone(800, 0.2))
    await call.live_stream.wait_until(lambda: any(m.message["event"] == "media" and m.at > call.clears[0]
                                                   for m in call.live_stream.received))  # fmt: skip
    await asyncio.sleep(0.3)

    (state,) = host.state.calls
    leg = state.leg
    assert isinstance(leg, TwilioLeg)
    played_before = sum(len(h.ulaw) for h in call.heard() if h.start < call.clears[0])
    after = b"".join(
        base64.b64decode(m.message["media"]["payload"])
        for m in call.live_stream.received
        if m.message["event"] == "media" and m.at > call.clears[0]
    )
    assert cancel["response_id"] == "resp_A" and truncate["item_id"] == "item_A"
    # what the marks confirmed: never past what the caller heard, and only the echoes in flight behind it
    assert played_before / 8 - 200 <= truncate["audio_end_ms"] <= played_before / 8
    assert after and after in ulaw_tone(800, 0.2) + b"\xff" * FRAME  # nothing of A after the clear
    assert leg.stale_marks > 0  # Twilio echoed the marks of unplayed audio at the clear: ignored
    await call.hang_up()


async def test_end_call_hangs_up_through_the_rest_api(
    start_twilio_host: StartTwilioHost, model: FakeRealtime, twilio: TwilioEmulator
) -> None:
    host = await start_twilio_host()
    call = await host.call()
    socket_ = await model.socket()
    goodbye = ulaw_tone(400, 0.3)
    await socket_.response_created("resp_bye")
    await socket_.audio("resp_bye", "item_bye", goodbye)
    await socket_.audio_done("resp_bye", "item_bye")
    await socket_.function_call("resp_bye", "end_call", {"reason": "done"}, call_id="call_1")
    await socket_.response_done("resp_bye")

    request = await twilio.rest.wait_for(lambda r: r.form.get("Status") == "completed")
    await call.wait_ended()
    assert request.call_sid == call.sid and call.end_reason == "completed_by_api"
    assert heard(call)[: len(goodbye)] == goodbye  # the goodbye was heard before the line went dead
    await host.server.close()


async def test_transfer_redirects_the_call_to_dial(
    start_twilio_host: StartTwilioHost, model: FakeRealtime, twilio: TwilioEmulator
) -> None:
    host = await start_twilio_host(TRANSFER_TARGET="+15551230000")
    call = await host.call()
    socket_ = await model.socket()
    await socket_.function_call("resp_t", "transfer_to_agent", {"summary": "a manager"}, call_id="call_t")
    await socket_.response_done("resp_t")

    request = await twilio.rest.wait_for(lambda r: "Twiml" in r.form)
    await call.wait_ended()
    assert "<Dial>+15551230000</Dial>" in request.form["Twiml"]
    assert call.transferred_to == "+15551230000"


async def test_pcm_model_hears_and_speaks_through_a_converter(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host(TWILIO_MODEL_AUDIO="pcm24")
    call = await host.call()
    socket_ = await model.socket()
    session = (await socket_.wait_for("session.update"))["session"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}

    call.say(tone(440, 1.0, 8000), rate=8000)
    to_model = await socket_.wait_audio_bytes(int(0.9 * 48_000))
    await socket_.speak("resp_1", "item_1", tone(440, 1.0, 24_000), chunk=4801)  # odd-length deltas too
    await call.live_stream.wait_until(lambda: len(heard(call)) >= 8000, timeout=5)

    assert dominant_frequency(to_model, 24_000) == pytest.approx(440, abs=3)
    to_caller = ulaw_to_pcm16(heard(call)[:8000])
    assert dominant_frequency(to_caller, 8000) == pytest.approx(440, abs=3)
    assert snr_against_sine(to_caller, 440, 8000, edge_seconds=0.1) > 30  # μ-law's own noise floor
    await call.hang_up()


async def test_the_door_refuses_a_stream_without_signature_or_token(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(host.stream_url)  # no signature
        assert refused.value.status == 403
        wrong = twilio_signature("f" * 32, host.stream_url, {})
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(host.stream_url, headers={"X-Twilio-Signature": wrong})
        assert refused.value.status == 403

    call_sid = new_sid("CA")
    other = mint_call_token(AUTH_TOKEN, new_sid("CA"), now=time.time(), ttl_seconds=120)
    expired = mint_call_token(AUTH_TOKEN, call_sid, now=time.time() - 600, ttl_seconds=120)
    for parameters in ({}, {"callToken": other}, {"callToken": expired}, {"callToken": "v1.garbage"}):
        stream = MediaStream(ACCOUNT_SID, call_sid)
        await stream.connect(host.stream_url, parameters, auth_token=AUTH_TOKEN)
        await stream.wait_closed()
        assert stream._ws is not None and stream._ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert model.upgrade_attempts == 0  # nothing was opened for them
    refused_reasons = dict(host.state.refused)
    assert refused_reasons == {
        "twilio_signature": 2,
        "call_token_malformed": 2,
        "call_token_wrong_call": 1,
        "call_token_expired": 1,
    }


async def test_malformed_twilio_messages_are_counted_and_dropped(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host()
    call = await host.call()
    socket_ = await model.socket()
    stream = call.live_stream
    for bad in ("not json", "[]", json.dumps({"event": "media", "media": {"payload": "@@"}}),
                json.dumps({"event": "media", "media": {"payload": "é", "track": "inbound", "chunk": "1",
                                                        "timestamp": "0"}}),
                json.dumps({"event": "futureEvent"})):  # fmt: skip
        await stream.send_raw(bad)
    speech = ulaw_tone(300, 0.2)
    call.say(tone(300, 0.2, 8000), rate=8000)
    async with asyncio.timeout(5):
        while speech not in appended(socket_):
            await asyncio.sleep(0.02)

    (state,) = host.state.calls
    assert sum(state.leg.malformed.values()) == 4 and dict(state.leg.unknown_kinds) == {"futureEvent": 1}
    assert not stream.closed
    await call.hang_up()


async def test_a_model_drop_mid_call_is_survived(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    host = await start_twilio_host()
    call = await host.call()
    first = await model.socket(0)
    await first.wait_for("response.create")
    await first.drop()
    speech = ulaw_tone(700, 0.3)
    call.say(tone(700, 0.3, 8000), rate=8000)  # spoken while the model is away
    second = await model.socket(1)
    async with asyncio.timeout(5):
        while speech not in appended(second):
            await asyncio.sleep(0.02)

    assert second.of_type("session.update")[0]["session"]["audio"]["input"]["format"] == {
        "type": "audio/pcmu"
    }
    assert not call.live_stream.closed and call.end_reason is None
    (state,) = host.state.calls
    assert state.model.reconnects == 1
    await call.hang_up()


async def test_phone_manners_work_on_a_twilio_call_too(
    start_twilio_host: StartTwilioHost, model: FakeRealtime
) -> None:
    """The call core keeps them, whatever the leg: keys become one input, and silence a reprompt."""
    host = await start_twilio_host(NO_INPUT_SECONDS="0.4", DTMF_GAP_MS="300")
    call = await host.call()
    socket_ = await model.socket()
    await socket_.wait_for("response.create")
    await socket_.speak("resp_greeting", "item_greeting", ulaw_tone(500, 0.2))
    for digit in "42#":
        await call.dtmf(digit)
    entry = await socket_.wait_for("conversation.item.create")
    assert entry["item"]["content"][0]["text"] == PHRASES["en"].keys.format(keys="4 2 #")
    answer = await socket_.wait_for("response.create", count=2)
    assert "response" not in answer  # a plain answer to the keys
    await socket_.speak("resp_keys", "item_keys", ulaw_tone(500, 0.2))

    reprompt = await socket_.wait_for("response.create", count=3, timeout=5)
    assert reprompt["response"]["instructions"].endswith(PHRASES["en"].reprompt)
    await call.hang_up()
