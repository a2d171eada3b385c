"""The ACS emulator and the functions behind the Functions host's routes, all on 127.0.0.1: what a
local softphone relies on (custom context on an incoming call, a user from /api/token being rung)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web

from all_in_one.functions_host import FunctionKeys, add_function_routes
from emulators.acs.emulator import AcsEmulator, EmulatedCall
from emulators.serving import serve

KEY = "k" * 40


@dataclass
class Local:
    emulator: AcsEmulator
    functions_url: str  # the Functions host's base URL

    @property
    def incoming_call_url(self) -> str:
        return f"{self.functions_url}/api/incoming-call?code={KEY}"

    async def post(self, route: str, body: dict[str, Any]) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.functions_url}/api/{route}", json=body, headers={"x-functions-key": KEY}
            ) as answer,
        ):
            return answer.status, await answer.json()

    def transport_query(self, call: EmulatedCall) -> dict[str, list[str]]:
        """The query of the transport URL the call was answered or placed with."""
        options = self.emulator.rest.calls[call.call_connection_id or ""].media_streaming_options
        assert options is not None
        return parse_qs(urlsplit(options["transportUrl"]).query)


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening: connecting to it is refused
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def local(clean_env: pytest.MonkeyPatch) -> AsyncIterator[Local]:
    emulator = AcsEmulator(ring_seconds=0.01)
    await emulator.start()
    app = web.Application()
    add_function_routes(app, keys=FunctionKeys(KEY))
    runner, url = await serve(app)
    # The media host is down: the emulator reports MediaStreamingFailed and the function hangs up.
    env = {
        **emulator.settings_env(),
        "CALLBACK_URI_HOST": url,
        "MEDIA_HOST_URL": f"ws://127.0.0.1:{closed_port()}",
    }
    for name, value in env.items():
        clean_env.setenv(name, value)
    try:
        yield Local(emulator, url)
    finally:
        await emulator.close()
        await runner.cleanup()


@pytest.mark.parametrize(
    ("allowed", "query"), [("true", {"profile": "restaurant", "voice": "coral"}), ("false", {})]
)
async def test_custom_context_picks_the_profile_and_voice_only_when_allowed(
    local: Local, clean_env: pytest.MonkeyPatch, allowed: str, query: dict[str, str]
) -> None:
    clean_env.setenv("CALLER_CHOOSES_PROFILE", allowed)
    headers = {"X-MS-Custom-Profile": "restaurant", "X-MS-Custom-Voice": "coral"}
    call = await local.emulator.incoming_call(local.incoming_call_url, custom_context={"sipHeaders": headers})

    async with asyncio.timeout(5):
        await call.ended.wait()  # the media host is down: the function hung up, as in production
    assert call.end_reason == "hung_up_by_app"
    assert call.event is not None and call.event["data"]["customContext"] == {"sipHeaders": headers}
    chosen = {k: v for k, v in local.transport_query(call).items() if k in ("profile", "voice")}
    assert chosen == {name: [value] for name, value in query.items()}


async def test_a_user_from_api_token_is_rung_by_api_calls(local: Local) -> None:
    rung: list[EmulatedCall] = []
    local.emulator.dial_observers.append(rung.append)

    status, issued = await local.post("token", {})
    assert status == 200
    assert local.emulator.rest.identities.user_of(issued["token"]) == issued["userId"]
    status, placed = await local.post("calls", {"target": issued["userId"], "voice": "coral"})

    assert status == 202
    async with asyncio.timeout(5):
        call = await local.emulator.next_outbound_call()
    assert rung == [call]  # told as it started ringing, before anyone picked up
    assert call.callee["rawId"] == issued["userId"] and call.call_connection_id == placed["callConnectionId"]
    assert local.transport_query(call)["voice"] == ["coral"]
