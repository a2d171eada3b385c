"""Azure OpenAI Realtime API (GA shape), translated in one place.

Client events are built as JSON strings; server events are decoded and type-checked in one msgspec
pass into small typed events (ids are bounded non-empty strings, audio is valid base64). Only the
events the call needs are typed; the rest become `OtherEvent` and are ignored by the session.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from .wire import WireError, decode

MODEL_RATE = 24_000  # the model speaks and listens PCM16 mono at 24 kHz
MAX_ID_CHARS = 256  # response, item and call ids: real ones are ~30 characters
MAX_TEXT_CHARS = 100_000  # transcripts and tool arguments
TOOL_NAME = r"^[A-Za-z0-9_-]{1,64}\Z"  # what the Realtime API allows (\Z: "$" would let a newline in)


AudioFormat = Literal["pcm24", "pcmu"]  # PCM16 at 24 kHz (the model's own), or G.711 μ-law at 8 kHz
_WIRE_FORMAT: dict[str, dict[str, Any]] = {
    "pcm24": {"type": "audio/pcm", "rate": MODEL_RATE},
    "pcmu": {"type": "audio/pcmu"},  # GA: Twilio's μ-law passes through with no conversion
}


@dataclass(frozen=True)
class SessionConfig:
    instructions: str
    voice: str
    transcription_model: str
    vad_threshold: float
    vad_silence_ms: int
    vad_prefix_ms: int
    tools: Sequence[dict[str, Any]]
    audio_format: AudioFormat = "pcm24"  # both directions


def session_update(config: SessionConfig) -> str:
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": _WIRE_FORMAT[config.audio_format],
                "transcription": {"model": config.transcription_model},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": config.vad_threshold,
                    "prefix_padding_ms": config.vad_prefix_ms,
                    "silence_duration_ms": config.vad_silence_ms,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": _WIRE_FORMAT[config.audio_format], "voice": config.voice},
        },
        "tools": list(config.tools),
        "tool_choice": "auto" if config.tools else "none",
    }
    return json.dumps({"type": "session.update", "session": session})


def append_audio(b64: str) -> str:
    # b64 is our own encoding (base64 has no character JSON must escape)
    return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'


def response_create(instructions: str | None = None) -> str:
    """A response; `instructions` replace the session's for this response only."""
    if instructions is None:
        return '{"type":"response.create"}'
    return json.dumps({"type": "response.create", "response": {"instructions": instructions}})


def response_cancel(response_id: str) -> str:
    return json.dumps({"type": "response.cancel", "response_id": response_id})


def truncate(item_id: str, audio_end_ms: int) -> str:
    return json.dumps(
        {
            "type": "conversation.item.truncate",
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        }
    )


def message_item(role: str, text: str) -> str:
    """A past turn put back into a new session's conversation (GA content types)."""
    part = {"type": "input_text" if role == "user" else "output_text", "text": text}
    return json.dumps(
        {"type": "conversation.item.create", "item": {"type": "message", "role": role, "content": [part]}}
    )


def function_output(call_id: str, output: str) -> str:
    return json.dumps(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": call_id, "output": output},
        }
    )


Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
Text = Annotated[str, msgspec.Meta(max_length=MAX_TEXT_CHARS)]


class _Event(msgspec.Struct, tag_field="type"):
    """A server event as it is on the wire; unknown fields are skipped."""


class SessionReady(_Event, tag="session.updated"):
    """`session.updated`: our configuration is in force."""


class SpeechStarted(_Event, tag="input_audio_buffer.speech_started"):
    """The caller started speaking (server VAD): barge-in if the assistant is talking."""


class SpeechStopped(_Event, tag="input_audio_buffer.speech_stopped"):
    """The caller stopped speaking: the clock of the turn's response latency starts."""


class CallerTranscript(_Event, tag="conversation.item.input_audio_transcription.completed"):
    item_id: Id
    text: Text = msgspec.field(default="", name="transcript")


class AudioDelta(_Event, tag="response.output_audio.delta"):
    response_id: Id
    item_id: Id
    pcm: bytes = msgspec.field(name="delta")  # base64 on the wire, decoded and checked in the same pass


class AudioDone(_Event, tag="response.output_audio.done"):
    response_id: Id
    item_id: Id


class AssistantTranscript(_Event, tag="response.output_audio_transcript.done"):
    response_id: Id
    item_id: Id
    text: Text = msgspec.field(default="", name="transcript")


class FunctionCall(_Event, tag="response.function_call_arguments.done"):
    response_id: Id
    call_id: Id
    name: Annotated[str, msgspec.Meta(pattern=TOOL_NAME)]  # a tool name: safe to count, log and name a task
    arguments: Text = "{}"


class _ResponseRef(msgspec.Struct):
    id: Id
    status: Annotated[str, msgspec.Meta(max_length=64)] = ""
    status_details: dict[str, Any] | None = None


class _ResponseCreated(_Event, tag="response.created"):
    response: _ResponseRef


class _ResponseDone(_Event, tag="response.done"):
    response: _ResponseRef


class _ErrorBody(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    type: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    message: Text = ""


class _Error(_Event, tag="error"):
    error: _ErrorBody


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class ResponseDone:
    response_id: str
    status: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class ServerError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class OtherEvent:
    type: str


ServerEvent = (
    SessionReady
    | SpeechStarted
    | SpeechStopped
    | CallerTranscript
    | ResponseCreated
    | AudioDelta
    | AudioDone
    | AssistantTranscript
    | FunctionCall
    | ResponseDone
    | ServerError
    | OtherEvent
)


class MalformedEvent(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # from a bounded set (see media_host.wire): safe to count by


class _AnyType(msgspec.Struct):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9_.]+\Z")]


_Wire = (
    SessionReady | SpeechStarted | SpeechStopped | CallerTranscript | AudioDelta | AudioDone
    | AssistantTranscript | FunctionCall | _ResponseCreated | _ResponseDone | _Error
)  # fmt: skip
_KNOWN: msgspec.json.Decoder[_Wire] = msgspec.json.Decoder(_Wire)
_TYPE_ONLY = msgspec.json.Decoder(_AnyType)


def parse_server_event(text: str | bytes) -> ServerEvent:
    try:
        event = decode(_KNOWN, text)
    except WireError as exc:
        if exc.path != "$.type":
            raise MalformedEvent(exc.reason) from None
        try:  # an event type we do not use, which is fine, or a bad type, which is not
            return OtherEvent(decode(_TYPE_ONLY, text).type)
        except WireError as bad:
            raise MalformedEvent(bad.reason) from None
    if isinstance(event, _ResponseCreated):
        return ResponseCreated(event.response.id)
    if isinstance(event, _ResponseDone):
        details = event.response.status_details or {}
        reason = details.get("reason")
        return ResponseDone(
            event.response.id, event.response.status, reason if isinstance(reason, str) else None
        )
    if isinstance(event, _Error):
        return ServerError(
            code=event.error.code or event.error.type or "unknown", message=event.error.message
        )
    return event
