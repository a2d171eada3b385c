"""The local stack picks its model from configuration alone: OPENAI_API_KEY means OpenAI."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import local_stack
from tests.fake_realtime import FakeRealtime

OPENAI_KEY = "sk-test-local-stack"


async def test_openai_api_key_sends_the_call_to_openai_instead_of_the_offline_engine(
    model: FakeRealtime,
) -> None:
    model.api_key, model.bearer = None, OPENAI_KEY
    settings = {"OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": f"{model.url}/v1"}
    async with local_stack(**settings) as stack:
        assert stack.model_url == f"ws{model.url[4:]}/v1/realtime?model=gpt-realtime"
        call = await stack.emulator.incoming_call(stack.incoming_call_url)
        async with asyncio.timeout(10):
            await call.media_ready.wait()
        socket = await model.socket()
        await socket.wait_for("session.update")
        assert socket.path == "/v1/realtime"
        await stack.emulator.caller_hangs_up(call)
