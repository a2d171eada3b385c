"""The softphone's server side against the whole local stack, with a WebSocket client in the page's
place: "Call me" (an ACS user token from the emulator's identity REST, then a real outbound call to
that user), the picked profile and voice reaching the media host, bad page input, and the softphone
served to this machine only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import numpy as np
import pytest

from local_stack.stack import LocalStack

SPEECH_RMS = 300  # PCM16: the greeting, not silence


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def local(stack: LocalStack, path: str) -> str:
    """The page's own origin: localhost, as a person opens it."""
    return f"http://localhost:{urlsplit(stack.gateway_url).port}{path}"


async def page_events(
    ws: aiohttp.ClientWebSocketResponse, *, until: str, timeout: float = 20.0
) -> tuple[list[dict[str, Any]], bytes]:
    """What the page would receive until a message of type `until`: the JSON messages and the audio."""
    messages: list[dict[str, Any]] = []
    audio = bytearray()
    async with asyncio.timeout(timeout):
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.BINARY:
                audio += msg.data
                continue
            messages.append(json.loads(msg.data))
            if messages[-1]["type"] in (until, "error"):
                break
    return messages, bytes(audio)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0


async def test_call_me_rings_the_pages_acs_user_and_streams_the_assistant(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    async with http.post(local(stack, "/softphone/token"), json={}) as answer:
        assert answer.status == 200, await answer.text()
        token = await answer.json()
    assert token["userId"].startswith(f"8:acs:{stack.emulator.resource_id}_") and token["token"]

    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:
        await ws.send_json({"type": "await", "userId": token["userId"]})
        waiting, _ = await page_events(ws, until="state")
        assert waiting[-1]["state"] == "waiting"
        ask = {"userId": token["userId"], "profile": "restaurant", "voice": "marin"}
        async with http.post(local(stack, "/softphone/call-me"), json=ask) as answer:
            assert answer.status == 202, await answer.text()
            placed = await answer.json()
        messages, _ = await page_events(ws, until="media")
        assert [m["state"] for m in messages if m["type"] == "state"][:2] == ["ringing", "connected"]
        assert messages[-1]["sampleRate"] == 24_000
        _, greeting = await page_events(ws, until="answer")  # the first assistant audio is on its way
        more, greeting_rest = await page_events(ws, until="turn")
        assert rms(greeting + greeting_rest) > SPEECH_RMS
        assert any(m.get("role") == "assistant" for m in more)

        # what ACS was asked: a call to the ACS user (no caller id), streaming to the media host
        call = stack.emulator.calls[-1]
        assert call.call_connection_id == placed["callConnectionId"]
        assert call.callee["rawId"] == token["userId"]
        create = next(r for r in stack.emulator.rest.requests if r.operation == "create")
        options = create.body["mediaStreamingOptions"]
        assert options["transportUrl"].startswith(stack.gateway_url.replace("http", "ws", 1) + "/ws/media")
        assert parse_qs(urlsplit(options["transportUrl"]).query)["voice"] == ["marin"]

        await ws.send_bytes(b"\x01")  # a bad frame is dropped, the call goes on
        await ws.send_json({"type": "hangup"})
        ended, _ = await page_events(ws, until="ended")
        assert ended[-1]["why"] == "caller_hung_up"


async def test_call_the_assistant_with_a_profile_and_voice_picked(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:
        await ws.send_json({"type": "call", "profile": "restaurant", "voice": "cedar"})
        messages, _ = await page_events(ws, until="media")
        assert [m["state"] for m in messages if m["type"] == "state"][:2] == ["ringing", "connected"]
        call = stack.emulator.calls[-1]
        assert call.direction == "inbound" and call.caller["rawId"] == "4:+14255550199"
        answer = next(r for r in stack.emulator.rest.requests if r.operation == "answer")
        query = parse_qs(urlsplit(answer.body["mediaStreamingOptions"]["transportUrl"]).query)
        assert (query["profile"], query["voice"]) == (["restaurant"], ["cedar"])
        await ws.send_json({"type": "hangup"})
        ended, _ = await page_events(ws, until="ended")
        assert ended[-1]["why"] == "caller_hung_up"


@pytest.mark.parametrize(
    ("first", "says"),
    [
        ("not json", "not JSON"),
        ({"type": "call", "voice": "robot"}, "unknown voice; choose one of: alloy"),
        ({"type": "call", "profile": "../secrets"}, "unknown profile; choose one of: restaurant"),
        ({"type": "await", "userId": "+14255550100"}, "ACS user /softphone/token issued"),
        ({"type": "await", "userId": "8:acs:00000000-0000-0000-0000-000000000000_1"}, "token issued"),
        ({"type": "dance"}, 'must be {"type": "call"}'),
    ],
)
async def test_bad_page_requests_get_a_clear_error(
    stack: LocalStack, http: aiohttp.ClientSession, first: Any, says: str
) -> None:
    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:
        await (ws.send_str(first) if isinstance(first, str) else ws.send_json(first))
        messages, _ = await page_events(ws, until="error")
    assert messages[-1]["type"] == "error" and says in messages[-1]["message"]
    assert stack.emulator.calls == []  # nothing rang


async def test_the_softphone_is_served_to_this_machine_only(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    async with http.get(local(stack, "/")) as page:
        assert page.status == 200 and "softphone.js" in await page.text()
    async with http.get(local(stack, "/softphone/config")) as answer:
        config = await answer.json()
    assert config["network"] == "emulated" and "restaurant" in config["profiles"]
    assert config["defaultVoice"] in config["voices"]
    # through a tunnel: the agent connects from loopback but forwards the public host or the client
    for headers in (
        {"Host": "abc.ngrok.app"},
        {"X-Forwarded-For": "203.0.113.9"},
        {"Forwarded": "for=1.2.3.4"},
    ):
        for method, path in (("GET", "/"), ("POST", "/softphone/token"), ("GET", "/softphone/ws")):
            async with http.request(method, local(stack, path), headers=headers, json={}) as refused:
                assert refused.status == 403, (headers, path)
                assert "this machine only" in await refused.text()


async def test_other_sites_pages_cannot_use_the_softphone(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    """Any page the person has open could make their browser call the softphone, which holds the key."""
    token = local(stack, "/softphone/token")
    evil = {"Origin": "https://evil.example"}
    async with http.post(token, json={}, headers=evil) as refused:
        assert refused.status == 403 and "other origins" in await refused.text()
    with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
        await http.ws_connect(local(stack, "/softphone/ws"), headers=evil)
    assert handshake.value.status == 403
    # "simple" requests (no preflight) any page may send: text/plain, or marked cross-site by the browser
    async with http.post(token, data="{}", headers={"Content-Type": "text/plain"}) as plain:
        assert plain.status == 403 and "JSON" in await plain.text()
    async with http.post(token, json={}, headers={"Sec-Fetch-Site": "cross-site"}) as marked:
        assert marked.status == 403
    own = {"Origin": local(stack, "").rstrip("/"), "Sec-Fetch-Site": "same-origin"}
    async with http.post(token, json={}, headers=own) as allowed:
        assert allowed.status == 200


@pytest.mark.parametrize("target", ["+14255550123", "8:acs:00000000-0000-0000-0000-000000000000_1"])
async def test_call_me_calls_only_the_users_the_softphone_issued(
    stack: LocalStack, http: aiohttp.ClientSession, target: str
) -> None:
    async with http.post(local(stack, "/softphone/call-me"), json={"userId": target}) as refused:
        assert refused.status == 400
        assert "userId must be an ACS user /softphone/token issued" in (await refused.json())["error"]
    assert stack.emulator.calls == []


async def test_a_page_that_hangs_up_while_it_rings_or_just_goes_away_ends_its_call(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    async with http.post(local(stack, "/softphone/token"), json={}) as answer:
        user = (await answer.json())["userId"]
    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:
        await ws.send_json({"type": "await", "userId": user})
        await page_events(ws, until="state")
        async with http.post(local(stack, "/softphone/call-me"), json={"userId": user}) as answer:
            assert answer.status == 202
        ringing, _ = await page_events(ws, until="state")
        assert ringing[-1]["state"] == "ringing"
        await ws.send_json({"type": "hangup"})  # before the callee's side picks up
        ended, _ = await page_events(ws, until="ended")
    rung = stack.emulator.calls[-1]
    assert ended[-1]["why"] == rung.end_reason == "caller_hung_up"
    assert "CallConnected" not in rung.callback_types()

    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:  # mid-call, the tab is closed
        await ws.send_json({"type": "call"})
        await page_events(ws, until="media")
    gone = stack.emulator.calls[-1]
    async with asyncio.timeout(10):
        await gone.ended.wait()
    assert gone.end_reason == "caller_hung_up" and gone.callback_types()[-1] == "CallDisconnected"


async def test_a_call_the_function_refuses_is_an_error_on_the_page_at_once(
    stack: LocalStack, http: aiohttp.ClientSession
) -> None:
    # ACS unavailable through every retry: the function answers 503 so that Event Grid would redeliver
    stack.emulator.rest.fail_next("answer", 503, "Service Unavailable", times=10)
    async with http.ws_connect(local(stack, "/softphone/ws")) as ws:
        await ws.send_json({"type": "call"})
        messages, _ = await page_events(ws, until="error", timeout=10)
    assert "incoming-call answered HTTP 5" in messages[-1]["message"]
    assert stack.emulator.calls[-1].end_reason == "caller_abandoned"
