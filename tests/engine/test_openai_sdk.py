"""The official `openai` SDK (GA `client.realtime`) against the engine on 127.0.0.1, both clients.

`AsyncOpenAI` and `AsyncAzureOpenAI` connect with an api key, send the product's GA session (the one
`media_host.realtime_protocol.session_update` builds), a recorded caller line as appends, let server VAD
answer, take the `end_call` tool call and answer it. Every server event the SDK receives is checked
strictly against the SDK's own types (tests/engine/sdk_events.py): no unknown field, no wrong literal,
nothing required missing, and `parse_event` gives the SDK class of its type.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, cast

import jsonschema  # type: ignore[import-untyped]
import pydantic
import pytest
from openai import AsyncAzureOpenAI, AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent
from openai.types.realtime.session_update_event_param import Session
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emulators.realtime import EngineServer
from emulators.realtime.assistant import GOODBYE, GREETING
from emulators.realtime.protocol import (
    AUDIO_FIELDS,
    AUDIO_INPUT_FIELDS,
    AUDIO_OUTPUT_FIELDS,
    FUNCTION_TOOL_FIELDS,
    NOISE_REDUCTION_FIELDS,
    PCM_FORMAT_FIELDS,
    SEMANTIC_VAD_FIELDS,
    SERVER_VAD_FIELDS,
    SESSION_FIELDS,
    TRANSCRIPTION_FIELDS,
)

from .caller import frames, script
from .conformance import problems
from .conftest import GA_SESSION, EventLog, StartEngine
from .sdk_events import SDK_EVENT_CLASSES, NotSdkConformant, sdk_problems, strict_event

KEY = "engine-test-key"
MODEL = "gpt-realtime"
AZURE_API_VERSION = "2025-08-28"  # AsyncAzureOpenAI requires one; the engine takes any (GA on every path)

# what a caller-to-tool conversation must show, every one checked against the SDK's types
EXPECTED = {
    "session.created",
    "session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.input_audio_transcription.completed",
    "response.created",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_audio.delta",
    "response.output_audio.done",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.done",
    "error",
}


@dataclass(frozen=True)
class Client:
    """How a program builds an SDK client for the engine at `url` (http://127.0.0.1:port)."""

    name: str
    build: Callable[[str], AsyncOpenAI]
    path: str  # what the SDK asks for, as the engine sees it


def _ws(url: str) -> str:
    return url.replace("http", "ws", 1)


def _azure(url: str, websocket_path: str, key: str = KEY) -> AsyncAzureOpenAI:
    """AsyncAzureOpenAI with the api-key header. It always asks for wss:// unless websocket_base_url is
    given, and the engine speaks plain ws:// on 127.0.0.1."""
    return AsyncAzureOpenAI(
        api_key=key,
        api_version=AZURE_API_VERSION,
        azure_endpoint=url,
        websocket_base_url=f"{_ws(url)}{websocket_path}",
    )


CLIENTS = [
    # api.openai.com's shape: base_url .../v1 -> ws://.../v1/realtime?model=..., Authorization: Bearer
    Client("openai", lambda url: AsyncOpenAI(api_key=KEY, base_url=f"{url}/v1"), "/v1/realtime"),
    # Azure's GA quickstart: AsyncOpenAI at <resource>/openai/v1 with the key as a bearer token
    Client(
        "openai-azure-v1",
        lambda url: AsyncOpenAI(
            api_key=KEY, base_url=f"{url}/openai/v1", websocket_base_url=f"{_ws(url)}/openai/v1"
        ),
        "/openai/v1/realtime",
    ),
    # AsyncAzureOpenAI: /openai/realtime?api-version=...&deployment=..., and its v1 path
    Client("azure", lambda url: _azure(url, "/openai"), "/openai/realtime"),
    Client("azure-v1", lambda url: _azure(url, "/openai/v1"), "/openai/v1/realtime"),
]


class Recorder(EventLog):
    """Reads a live SDK connection the way `recv()` does (`recv_bytes` + `parse_event`), keeping both."""

    def __init__(self, conn: AsyncRealtimeConnection) -> None:
        super().__init__()
        self.conn = conn
        self.raw: list[bytes] = []
        self.parsed: list[RealtimeServerEvent] = []
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.conn.recv_bytes()
                self.raw.append(raw)
                self.parsed.append(self.conn.parse_event(raw))
                self.record(json.loads(raw))
        except ConnectionClosed:
            return

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@pytest.fixture
async def engine(start_engine: StartEngine) -> AsyncIterator[EngineServer]:
    yield await start_engine(api_key=KEY, pace=0)


async def say(conn: AsyncRealtimeConnection, pcm: bytes) -> None:
    """A caller line as 20 ms `input_audio_buffer.append`s, through the SDK's typed method."""
    for frame in frames(pcm):
        await conn.input_audio_buffer.append(audio=base64.b64encode(frame).decode("ascii"))


def session_with(**changes: Any) -> Session:
    session = json.loads(json.dumps(GA_SESSION))  # the media host's own session.update
    session.update(changes)
    return cast(Session, session)


async def converse(conn: AsyncRealtimeConnection, session: Session) -> Recorder:
    """Greeting, a booking request, a goodbye with its end_call, the tool's output, one bad event."""
    rec = Recorder(conn)
    await rec.wait_for("session.created")
    await conn.session.update(session=session)
    await rec.wait_for("session.updated")
    await conn.response.create()  # the media host asks for the greeting
    assert rec.transcript_of((await rec.response_done(1))["id"]) == GREETING

    lines = script()
    await say(conn, lines[0].pcm)  # "Hi, I would like to book a table please."
    await rec.response_done(2)
    await say(conn, lines[-1].pcm)  # "That's all, thank you. Goodbye."
    goodbye = await rec.response_done(3)
    assert rec.transcript_of(goodbye["id"]) == GOODBYE
    call = next(o for o in goodbye["output"] if o["type"] == "function_call")

    await conn.conversation.item.create(
        item={"type": "function_call_output", "call_id": call["call_id"], "output": '{"status": "ended"}'}
    )
    await conn.response.create()
    assert (await rec.response_done(4))["status"] == "completed"

    # a client event the engine refuses: the SDK's own shape, but no such item
    await conn.conversation.item.truncate(
        item_id="item_nope", content_index=0, audio_end_ms=0, event_id="evt_bad"
    )
    await rec.wait_for("error")
    await conn.send_raw(json.dumps({"type": "response.bogus", "event_id": "evt_unknown"}))
    await rec.wait_for("error", count=2)
    return rec


def check_strictly(rec: Recorder) -> None:
    """Every event: strictly valid for the SDK's class of its type, and parsed by the SDK into that class."""
    assert sdk_problems([r.decode() for r in rec.raw]) == []
    for raw, parsed in zip(rec.raw, rec.parsed, strict=True):
        kind = json.loads(raw)["type"]
        assert type(parsed) is SDK_EVENT_CLASSES[kind], (kind, type(parsed))
    assert problems(rec.events) == []  # the GA rules of protocols.md 6.6, and the media host reads them


@pytest.mark.parametrize("client", CLIENTS, ids=[c.name for c in CLIENTS])
async def test_the_official_sdk_converses_and_every_event_is_what_its_types_say(
    engine: EngineServer, client: Client
) -> None:
    sdk = client.build(engine.url)
    async with sdk.realtime.connect(model=MODEL) as conn:
        rec = await converse(conn, session_with())
        assert [s.stats.path for s in engine.engine.sessions] == [client.path]
        await rec.stop()
    await sdk.close()

    check_strictly(rec)
    assert {e["type"] for e in rec.events} >= EXPECTED, EXPECTED - {e["type"] for e in rec.events}
    assert rec.events[0]["session"]["model"] == MODEL

    # the fields issue 14 found wrong or missing
    parts = rec.of_type("response.content_part.added") + rec.of_type("response.content_part.done")
    assert {p["part"]["type"] for p in parts} == {"audio"}  # the item's content says output_audio
    items = [e["item"] for e in rec.of_type("response.output_item.done") if e["item"]["type"] == "message"]
    assert {c["type"] for i in items for c in i["content"]} == {"output_audio"}
    transcribed = rec.of_type("conversation.item.input_audio_transcription.completed")
    assert len(transcribed) == 2
    for event in transcribed:  # the session asks for whisper-1: billed by the second
        assert event["usage"]["type"] == "duration" and 0.5 < event["usage"]["seconds"] < 10
    for response in (e["response"] for e in rec.of_type("response.done")):
        assert response["status"] == "completed"
        assert (
            response["usage"]["total_tokens"]
            == response["usage"]["input_tokens"] + response["usage"]["output_tokens"]
        )

    # the tool call: streamed arguments that add up, valid for the schema the session declared
    (done,) = rec.of_type("response.function_call_arguments.done")
    deltas = [e["delta"] for e in rec.of_type("response.function_call_arguments.delta")]
    assert "".join(deltas) == done["arguments"] and done["name"] == "end_call"
    (declared,) = [t["parameters"] for t in GA_SESSION["tools"] if t["name"] == "end_call"]
    jsonschema.validate(json.loads(done["arguments"]), declared)

    # the refused events: errors naming the client's event_id
    errors = [e["error"] for e in rec.of_type("error")]
    assert [(e["code"], e["event_id"]) for e in errors] == [
        ("invalid_value", "evt_bad"),
        ("unknown_event_type", "evt_unknown"),
    ]


async def test_end_call_arguments_follow_the_declared_schema(engine: EngineServer) -> None:
    """A deployment's own end_call schema: required properties, an enum, a boolean, nothing else allowed."""
    parameters = {
        "type": "object",
        "properties": {
            "outcome": {"type": "string", "enum": ["resolved", "abandoned", "transferred"]},
            "farewell_said": {"type": "boolean"},
            "note": {"type": "string", "minLength": 3, "maxLength": 80},
            "turns": {"type": "integer", "minimum": 1},
        },
        "required": ["outcome", "farewell_said", "note", "turns"],
        "additionalProperties": False,
    }
    tools = [
        {"type": "function", "name": "end_call", "description": "End the call.", "parameters": parameters}
    ]
    sdk = _azure(engine.url, "/openai")
    async with sdk.realtime.connect(model=MODEL) as conn:
        rec = Recorder(conn)
        session = session_with(tools=tools)
        session["audio"]["input"]["transcription"] = {"model": "gpt-4o-transcribe"}
        await conn.session.update(session=session)
        await rec.wait_for("session.updated")
        await say(conn, script()[-1].pcm)  # goodbye
        response = await rec.response_done(1)
        await rec.stop()
    await sdk.close()

    check_strictly(rec)
    (call,) = [o for o in response["output"] if o["type"] == "function_call"]
    arguments = json.loads(call["arguments"])
    jsonschema.validate(arguments, parameters)
    assert arguments["outcome"] == "resolved" and "goodbye" in arguments["note"]
    (transcribed,) = rec.of_type("conversation.item.input_audio_transcription.completed")
    usage = transcribed["usage"]  # a token-billed transcription model
    assert (
        usage["type"] == "tokens"
        and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0
    )


async def test_the_sdk_is_refused_without_the_engines_key(engine: EngineServer) -> None:
    for sdk in (
        AsyncOpenAI(api_key="wrong", base_url=f"{engine.url}/v1"),
        _azure(engine.url, "/openai", key="wrong"),
    ):
        with pytest.raises(InvalidStatus) as refused:
            async with sdk.realtime.connect(model=MODEL):
                pass
        assert refused.value.response.status_code == 401
        await sdk.close()


def test_the_strict_check_catches_a_wrong_literal_an_unknown_field_and_a_missing_one() -> None:
    good = {
        "type": "response.content_part.added",
        "event_id": "event_1",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "part": {"type": "audio", "transcript": ""},
    }
    strict_event(json.dumps(good))
    for bad in (
        {**good, "part": {"type": "output_audio", "transcript": ""}},  # the literal issue 14 found
        {**good, "part": {"type": "audio", "transcript": "", "voice": "alloy"}},  # nested unknown field
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "response_id"},
        {**good, "output_index": "0"},  # no coercion
        {**good, "type": "response.content_part.bogus"},
    ):
        with pytest.raises(NotSdkConformant):
            strict_event(json.dumps(bad))


@pytest.mark.parametrize(
    ("fields", "model"),
    [
        (SESSION_FIELDS, "realtime_session_create_request.RealtimeSessionCreateRequest"),
        (AUDIO_FIELDS, "realtime_audio_config.RealtimeAudioConfig"),
        (AUDIO_INPUT_FIELDS, "realtime_audio_config_input.RealtimeAudioConfigInput"),
        (AUDIO_OUTPUT_FIELDS, "realtime_audio_config_output.RealtimeAudioConfigOutput"),
        (TRANSCRIPTION_FIELDS, "audio_transcription.AudioTranscription"),
        (NOISE_REDUCTION_FIELDS, "realtime_audio_config_input.NoiseReduction"),
        (SERVER_VAD_FIELDS, "realtime_audio_input_turn_detection.ServerVad"),
        (SEMANTIC_VAD_FIELDS, "realtime_audio_input_turn_detection.SemanticVad"),
        (FUNCTION_TOOL_FIELDS, "realtime_function_tool.RealtimeFunctionTool"),
        (PCM_FORMAT_FIELDS, "realtime_audio_formats.AudioPCM"),
    ],
)
def test_the_session_fields_the_engine_knows_are_the_sdks(fields: frozenset[str], model: str) -> None:
    """The engine refuses unknown session fields (`unknown_parameter`) by these lists: keep them the SDK's."""
    import importlib

    module, _, name = model.partition(".")
    cls: type[pydantic.BaseModel] = getattr(importlib.import_module(f"openai.types.realtime.{module}"), name)
    assert fields == set(cls.model_fields)
