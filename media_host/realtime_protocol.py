"""Azure OpenAI Realtime API (GA shape), translated in one place.

Client events are built as JSON strings; server events are parsed into small typed events. Only the
events the call needs are typed; the rest become `OtherEvent` and are ignored by the session.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MODEL_RATE = 24_000  # the model speaks and listens PCM16 mono at 24 kHz


@dataclass(frozen=True)
class SessionConfig:
    instructions: str
    voice: str
    transcription_model: str
    vad_threshold: float
    vad_silence_ms: int
    vad_prefix_ms: int
    tools: Sequence[dict[str, Any]]


def session_update(config: SessionConfig) -> str:
    session: dict[str, Any] = {
        "type": "realtime",
        "instructions": config.instructions,
        "output_modalities": ["audio"],
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": MODEL_RATE},
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
            "output": {"format": {"type": "audio/pcm", "rate": MODEL_RATE}, "voice": config.voice},
        },
        "tools": list(config.tools),
        "tool_choice": "auto" if config.tools else "none",
    }
    return json.dumps({"type": "session.update", "session": session})


def append_audio(b64: str) -> str:
    # b64 was validated against the strict base64 alphabet, so it needs no JSON escaping
    return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'


def response_create() -> str:
    return '{"type":"response.create"}'


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


@dataclass(frozen=True, slots=True)
class SessionReady:
    """`session.updated`: our configuration is in force."""


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking (server VAD): barge-in if the assistant is talking."""


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The caller stopped speaking: the clock of the turn's response latency starts."""


@dataclass(frozen=True, slots=True)
class CallerTranscript:
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ResponseCreated:
    response_id: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    response_id: str
    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class AudioDone:
    response_id: str
    item_id: str


@dataclass(frozen=True, slots=True)
class AssistantTranscript:
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class FunctionCall:
    response_id: str
    call_id: str
    name: str
    arguments: str


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
    pass


def parse_server_event(text: str | bytes) -> ServerEvent:
    try:
        event = json.loads(text)
        parser: Callable[[dict[str, Any]], ServerEvent] = _PARSERS.get(event["type"], _other)
        return parser(event)
    except Exception as exc:  # whatever the shape of the nonsense, it is one dropped event, never a crash
        raise MalformedEvent(f"{type(exc).__name__}: {exc}"[:200]) from None


def _other(e: dict[str, Any]) -> ServerEvent:
    return OtherEvent(type=str(e["type"]))


def _response_done(e: dict[str, Any]) -> ServerEvent:
    response = e["response"]
    details = response.get("status_details") or {}
    return ResponseDone(
        response_id=response["id"], status=response.get("status", ""), reason=details.get("reason")
    )


def _error(e: dict[str, Any]) -> ServerEvent:
    error = e.get("error") or {}
    return ServerError(
        code=str(error.get("code") or error.get("type") or "unknown"), message=str(error.get("message", ""))
    )


_PARSERS: dict[str, Callable[[dict[str, Any]], ServerEvent]] = {
    "session.updated": lambda e: SessionReady(),
    "input_audio_buffer.speech_started": lambda e: SpeechStarted(),
    "input_audio_buffer.speech_stopped": lambda e: SpeechStopped(),
    "conversation.item.input_audio_transcription.completed": lambda e: CallerTranscript(
        e["item_id"], str(e.get("transcript", ""))
    ),
    "response.created": lambda e: ResponseCreated(e["response"]["id"]),
    "response.output_audio.delta": lambda e: AudioDelta(
        e["response_id"], e["item_id"], base64.b64decode(e["delta"], validate=True)
    ),
    "response.output_audio.done": lambda e: AudioDone(e["response_id"], e["item_id"]),
    "response.output_audio_transcript.done": lambda e: AssistantTranscript(
        e["response_id"], e["item_id"], str(e.get("transcript", ""))
    ),
    "response.function_call_arguments.done": lambda e: FunctionCall(
        e["response_id"], e["call_id"], e["name"], e.get("arguments") or "{}"
    ),
    "response.done": _response_done,
    "error": _error,
}
