"""Realtime API (GA) wire shapes for the engine: ids, the session object, items, errors.

Server event names follow reference/protocols.md section 6.6; `SERVER_EVENT_TYPES` is what this
engine may send. Client events are validated here into plain values or a `ClientError`, which the
session turns into an `error` event; nothing a client sends can raise past the session.
"""

from __future__ import annotations

import copy
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

from .listening import VadConfig
from .speech import VOICES

RATE = 24_000
BYTES_PER_MS = RATE * 2 // 1000  # PCM16 mono: 48 bytes per millisecond

SERVER_EVENT_TYPES = frozenset(
    {
        "error",
        "session.created",
        "session.updated",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.truncated",
        "conversation.item.deleted",
        "conversation.item.retrieved",
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
        "response.output_text.delta",
        "response.output_text.done",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.done",
    }
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def audio_ms(n_bytes: int) -> int:
    return math.ceil(n_bytes / BYTES_PER_MS)


class ClientError(Exception):
    """A client event the engine refuses; becomes an `error` server event."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def error_event(err: ClientError, client_event_id: str | None) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "code": err.code,
            "message": err.message,
            "param": err.param,
            "event_id": client_event_id,
        },
    }


# -- the session -----------------------------------------------------------------------------------
def default_session(model: str) -> dict[str, Any]:
    """The session as `session.created` shows it. The SDK's type for it (`RealtimeSessionCreateRequest`)
    has no `id` or `object`, so the engine keeps the session's id to itself."""
    return {
        "type": "realtime",
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": {"type": "audio/pcm", "rate": RATE}, "voice": "alloy", "speed": 1.0},
        },
    }


# The fields the GA session types declare (openai-python 3.57.0, `openai.types.realtime`:
# RealtimeSessionCreateRequest, RealtimeAudioConfig*, AudioTranscription, ServerVad / SemanticVad,
# RealtimeFunctionTool; tests/engine checks these against the installed SDK). Anything else in a
# `session.update` is refused as the service refuses it: `unknown_parameter`.
SESSION_FIELDS = frozenset(
    {
        "type",
        "audio",
        "include",
        "instructions",
        "max_output_tokens",
        "model",
        "output_modalities",
        "parallel_tool_calls",
        "prompt",
        "reasoning",
        "tool_choice",
        "tools",
        "tracing",
        "truncation",
    }
)
AUDIO_FIELDS = frozenset({"input", "output"})
AUDIO_INPUT_FIELDS = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
AUDIO_OUTPUT_FIELDS = frozenset({"format", "speed", "voice"})
TRANSCRIPTION_FIELDS = frozenset({"delay", "keywords", "language", "languages", "model", "prompt"})
NOISE_REDUCTION_FIELDS = frozenset({"strength", "type"})
SERVER_VAD_FIELDS = frozenset(
    {
        "type",
        "create_response",
        "idle_timeout_ms",
        "interrupt_response",
        "prefix_padding_ms",
        "silence_duration_ms",
        "threshold",
    }
)
SEMANTIC_VAD_FIELDS = frozenset({"type", "create_response", "eagerness", "interrupt_response"})
FUNCTION_TOOL_FIELDS = frozenset({"description", "name", "parameters", "type"})
PCM_FORMAT_FIELDS = frozenset({"type", "rate"})
# The service's own session objects elsewhere carry these; a client echoing them back is let off.
IGNORED_SESSION_FIELDS = frozenset({"id", "object"})


@dataclass(frozen=True)
class SessionSettings:
    """What the engine acts on, derived from the session object."""

    instructions: str
    voice: str
    speed: float
    text_only: bool
    transcription: bool
    vad: VadConfig | None
    create_response: bool
    interrupt_response: bool
    tools: frozenset[str] = field(default_factory=frozenset)  # the ones the model may call now
    tool_parameters: dict[str, Any] = field(default_factory=dict)  # name -> declared JSON schema
    transcription_model: str = ""


def merge_session(current: dict[str, Any], update: Any) -> dict[str, Any]:
    """The session after `update` (a `session.update`'s `session`), or ClientError; `current` is untouched."""
    if not isinstance(update, dict):
        raise ClientError("invalid_type", "session must be an object", "session")
    if "type" not in update:
        raise ClientError(
            "missing_required_parameter", "Missing required parameter: 'session.type'.", "session.type"
        )
    if update["type"] != "realtime":
        raise ClientError(
            "invalid_value",
            f"session.type {update['type']!r} is not supported by the offline engine; use 'realtime'",
            "session.type",
        )
    update = {k: v for k, v in update.items() if k not in IGNORED_SESSION_FIELDS}
    check_fields(update)
    merged = copy.deepcopy(current)
    _merge(merged, {k: v for k, v in update.items() if k != "model"})
    settings_of(merged)  # raises on anything the engine cannot honour
    return merged


def check_fields(session: dict[str, Any]) -> None:
    """ClientError('unknown_parameter') for the first field no GA session type declares."""
    _known(session, SESSION_FIELDS, "session")
    audio = session.get("audio")
    if isinstance(audio, dict):
        _known(audio, AUDIO_FIELDS, "session.audio")
        audio_in, audio_out = audio.get("input"), audio.get("output")
        if isinstance(audio_in, dict):
            _known(audio_in, AUDIO_INPUT_FIELDS, "session.audio.input")
            for name, fields in (
                ("transcription", TRANSCRIPTION_FIELDS),
                ("noise_reduction", NOISE_REDUCTION_FIELDS),
            ):
                if isinstance(audio_in.get(name), dict):
                    _known(audio_in[name], fields, f"session.audio.input.{name}")
            td = audio_in.get("turn_detection")
            if isinstance(td, dict):
                fields = SEMANTIC_VAD_FIELDS if td.get("type") == "semantic_vad" else SERVER_VAD_FIELDS
                _known(td, fields, "session.audio.input.turn_detection")
            if isinstance(audio_in.get("format"), dict):
                _known(audio_in["format"], PCM_FORMAT_FIELDS, "session.audio.input.format")
        if isinstance(audio_out, dict):
            _known(audio_out, AUDIO_OUTPUT_FIELDS, "session.audio.output")
            if isinstance(audio_out.get("format"), dict):
                _known(audio_out["format"], PCM_FORMAT_FIELDS, "session.audio.output.format")
    tools = session.get("tools")
    if isinstance(tools, list):
        for n, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "function":
                _known(tool, FUNCTION_TOOL_FIELDS, f"session.tools[{n}]")


def _known(obj: dict[str, Any], fields: frozenset[str], where: str) -> None:
    for name in obj:
        if name not in fields:
            raise ClientError("unknown_parameter", f"Unknown parameter: '{where}.{name}'.", f"{where}.{name}")


# Objects whose update replaces the whole value (a new turn_detection type must not keep the old
# type's fields); the session and its audio sections merge field by field.
_MERGED = frozenset({"audio", "input", "output"})


def _merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key in _MERGED:
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def settings_of(session: dict[str, Any]) -> SessionSettings:
    instructions = session.get("instructions") or ""
    if not isinstance(instructions, str):
        raise ClientError("invalid_type", "instructions must be a string", "session.instructions")
    modalities = session.get("output_modalities") or ["audio"]
    if modalities not in (["audio"], ["text"]):
        raise ClientError(
            "invalid_value", "output_modalities must be ['audio'] or ['text']", "session.output_modalities"
        )
    audio = _obj(session.get("audio") or {}, "session.audio")
    audio_in = _obj(audio.get("input") or {}, "session.audio.input")
    audio_out = _obj(audio.get("output") or {}, "session.audio.output")
    for where, raw_format in (("input", audio_in.get("format")), ("output", audio_out.get("format"))):
        if raw_format is None:
            continue
        fmt = _obj(raw_format, f"session.audio.{where}.format")
        if fmt.get("type") != "audio/pcm" or fmt.get("rate", RATE) != RATE:
            raise ClientError(
                "invalid_value",
                f"the offline engine speaks audio/pcm at {RATE} Hz only, got {fmt}",
                f"session.audio.{where}.format",
            )
    voice = audio_out.get("voice", "alloy")
    if voice not in VOICES:
        raise ClientError(
            "invalid_value", f"voice {voice!r} is not one of {sorted(VOICES)}", "session.audio.output.voice"
        )
    speed = audio_out.get("speed", 1.0)
    if not isinstance(speed, int | float) or isinstance(speed, bool) or not 0.25 <= speed <= 1.5:
        raise ClientError(
            "invalid_value", "speed must be a number from 0.25 to 1.5", "session.audio.output.speed"
        )
    transcription = audio_in.get("transcription")
    transcription_model = ""
    if transcription is not None:
        transcription_model = _obj(transcription, "session.audio.input.transcription").get("model") or ""
        if not isinstance(transcription_model, str):
            raise ClientError(
                "invalid_type",
                "transcription.model must be a string",
                "session.audio.input.transcription.model",
            )
    vad, create, interrupt = _turn_detection(audio_in.get("turn_detection"))
    parameters = _tool_parameters(session.get("tools"))
    return SessionSettings(
        instructions=instructions,
        voice=voice,
        speed=float(speed),
        text_only=modalities == ["text"],
        transcription=transcription is not None,
        vad=vad,
        create_response=create,
        interrupt_response=interrupt,
        tools=_tools(list(parameters), session.get("tool_choice", "auto")),
        tool_parameters=parameters,
        transcription_model=transcription_model,
    )


def _obj(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ClientError("invalid_type", f"{param} must be an object", param)
    return value


def _turn_detection(td: Any) -> tuple[VadConfig | None, bool, bool]:
    param = "session.audio.input.turn_detection"
    if td is None:
        return None, False, False
    td = _obj(td, param)
    kind = td.get("type")
    if kind not in ("server_vad", "semantic_vad"):
        raise ClientError("invalid_value", f"turn_detection.type {kind!r} is not supported", f"{param}.type")
    threshold = td.get("threshold", 0.5)
    silence = td.get("silence_duration_ms", 500)
    prefix = td.get("prefix_padding_ms", 300)
    if kind == "semantic_vad":  # no semantics here: eagerness only sets how long a pause ends a turn
        silence = {"low": 1000, "high": 300}.get(td.get("eagerness", "auto"), 500)
    for name, value, low, high in (
        ("threshold", threshold, 0.0, 1.0),
        ("silence_duration_ms", silence, 0, 10_000),
        ("prefix_padding_ms", prefix, 0, 10_000),
    ):
        if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
            raise ClientError(
                "invalid_value", f"{name} must be a number from {low} to {high}", f"{param}.{name}"
            )
    for name in ("create_response", "interrupt_response"):
        if not isinstance(td.get(name, True), bool):
            raise ClientError("invalid_type", f"{name} must be a boolean", f"{param}.{name}")
    vad = VadConfig(
        threshold=float(threshold), prefix_padding_ms=int(prefix), silence_duration_ms=int(silence)
    )
    return vad, bool(td.get("create_response", True)), bool(td.get("interrupt_response", True))


def _tool_parameters(tools: Any) -> dict[str, Any]:
    """Each declared function's name and its `parameters` JSON schema (None when it declared none)."""
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        raise ClientError("invalid_type", "tools must be a list", "session.tools")
    declared: dict[str, Any] = {}
    for n, tool in enumerate(tools):
        if (
            not isinstance(tool, dict)
            or tool.get("type") != "function"
            or not isinstance(tool.get("name"), str)
        ):
            raise ClientError(
                "invalid_value",
                "each tool must be {type: 'function', name: <string>, ...}",
                f"session.tools[{n}]",
            )
        parameters = tool.get("parameters")
        if parameters is not None and (
            not isinstance(parameters, dict) or parameters.get("type", "object") != "object"
        ):
            raise ClientError(
                "invalid_value",
                "a function's parameters must be a JSON schema of type 'object'",
                f"session.tools[{n}].parameters",
            )
        if tool["name"] in declared:
            raise ClientError(
                "invalid_value", f"tool {tool['name']!r} is declared twice", f"session.tools[{n}].name"
            )
        declared[tool["name"]] = parameters
    return declared


def _tools(names: list[str], choice: Any) -> frozenset[str]:
    if choice == "none":
        return frozenset()
    if isinstance(choice, dict) and choice.get("type") == "function":
        return frozenset(n for n in names if n == choice.get("name"))
    if choice not in ("auto", "required") and not isinstance(choice, dict):
        raise ClientError("invalid_value", f"tool_choice {choice!r} is not supported", "session.tool_choice")
    return frozenset(names)


# -- conversation items ----------------------------------------------------------------------------
@dataclass
class Item:
    """One conversation item, with what the engine needs to remember about it."""

    id: str
    type: str  # message | function_call | function_call_output
    role: str | None = None
    status: str = "completed"
    text: str = ""  # transcript / text of a message
    content_type: str = ""  # input_audio | input_text | output_audio | output_text
    audio_bytes: int = 0  # assistant audio generated (and not truncated away)
    call_id: str = ""
    name: str = ""
    arguments: str = ""
    output: str = ""
    answered: bool = False  # a response has used this input
    transcript_pending: bool = False  # a user audio item before its transcription is known

    @property
    def audio_ms(self) -> int:
        return audio_ms(self.audio_bytes)

    def wire(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.id,
            "object": "realtime.item",
            "type": self.type,
            "status": self.status,
        }
        if self.type == "message":
            item["role"] = self.role
            item["content"] = [self.part()] if self.content_type else []
        elif self.type == "function_call":
            item.update(call_id=self.call_id, name=self.name, arguments=self.arguments)
        else:
            item.update(call_id=self.call_id, output=self.output)
        return item

    def event_part(self) -> dict[str, Any]:
        """The part as `response.content_part.added/done` carry it: there the SDK's types say `audio` /
        `text` (`ResponseContentPartAddedEvent.Part.type`), while the item itself says `output_audio` /
        `output_text`."""
        if self.content_type == "output_audio":
            return {"type": "audio", "transcript": self.text}
        return {"type": "text", "text": self.text}

    def part(self) -> dict[str, Any]:
        if self.content_type == "input_audio":
            return {"type": "input_audio", "transcript": None if self.transcript_pending else self.text}
        if self.content_type == "output_audio":
            return {"type": "output_audio", "transcript": self.text}
        return {"type": self.content_type, "text": self.text}


def parse_item(raw: Any) -> Item:
    """A `conversation.item.create` item, or ClientError."""
    item = _obj(raw, "item")
    kind = item.get("type")
    item_id = item.get("id") or new_id("item")
    if not isinstance(item_id, str):
        raise ClientError("invalid_type", "item.id must be a string", "item.id")
    if kind == "function_call_output":
        call_id, output = item.get("call_id"), item.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise ClientError(
                "missing_required_parameter", "function_call_output needs call_id", "item.call_id"
            )
        if not isinstance(output, str):
            raise ClientError("invalid_type", "function_call_output.output must be a string", "item.output")
        return Item(item_id, "function_call_output", call_id=call_id, output=output)
    if kind == "function_call":
        name, call_id, args = item.get("name"), item.get("call_id"), item.get("arguments", "{}")
        if not (isinstance(name, str) and isinstance(call_id, str) and isinstance(args, str)):
            raise ClientError(
                "invalid_value", "function_call needs name, call_id and arguments strings", "item"
            )
        return Item(item_id, "function_call", call_id=call_id, name=name, arguments=args)
    if kind != "message":
        raise ClientError("invalid_value", f"item.type {kind!r} is not supported", "item.type")
    role = item.get("role")
    if role not in ("user", "assistant", "system"):
        raise ClientError("invalid_value", "message role must be user, assistant or system", "item.role")
    content = item.get("content")
    if not isinstance(content, list) or not content:
        raise ClientError("invalid_value", "message content must be a non-empty list", "item.content")
    texts: list[str] = []
    for n, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text"):
            raise ClientError(
                "invalid_value",
                "the offline engine accepts text content parts only (input_text / output_text)",
                f"item.content[{n}]",
            )
        if not isinstance(part.get("text"), str):
            raise ClientError("invalid_type", "content text must be a string", f"item.content[{n}].text")
        texts.append(part["text"])
    content_type = "output_text" if role == "assistant" else "input_text"
    return Item(item_id, "message", role=role, text=" ".join(texts), content_type=content_type)


def usage(
    input_text_tokens: int, input_audio_tokens: int, text_tokens: int, audio_tokens: int
) -> dict[str, Any]:
    inputs = input_text_tokens + input_audio_tokens
    outputs = text_tokens + audio_tokens
    return {
        "total_tokens": inputs + outputs,
        "input_tokens": inputs,
        "output_tokens": outputs,
        "input_token_details": {
            "text_tokens": input_text_tokens,
            "audio_tokens": input_audio_tokens,
            "cached_tokens": 0,
        },
        "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
    }


def transcription_usage(model: str, transcript: str, duration_ms: int) -> dict[str, Any]:
    """`usage` of `conversation.item.input_audio_transcription.completed`: whisper-1 is billed by the
    second of audio (`duration`), the gpt-4o transcribe models by tokens (`tokens`)."""
    if model.startswith("whisper"):
        return {"type": "duration", "seconds": round(duration_ms / 1000, 3)}
    audio_tokens = math.ceil(duration_ms / 100)  # about ten audio tokens a second
    output_tokens = text_tokens(transcript)
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": output_tokens,
        "total_tokens": audio_tokens + output_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
    }


def text_tokens(text: str) -> int:
    return math.ceil(len(text.split()) * 4 / 3)
