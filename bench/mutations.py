"""Bad messages for the media host's two sockets, each invalid by construction.

Every mutation starts from a real message shape (ACS media JSON, a Realtime server event) and breaks it
in a way the protocol itself forbids: a required field of the wrong type, an id no real server sends,
audio that is not base64 of whole samples, JSON cut short, bytes that are not UTF-8, nesting no
parser should follow. So a correct host must drop every one of them and change nothing a caller hears
or the model receives; the fuzzer checks exactly that. Unknown kinds/types are included too: they are
valid JSON the host must ignore.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEEP = 50_000  # nesting far past any parser's recursion limit
HUGE_NUMBER = "9" * 5000  # past Python's 4,300-digit int limit


@dataclass(frozen=True)
class Bad:
    """One message to send: text (may be invalid UTF-8 bytes) or a binary frame."""

    payload: bytes
    binary: bool
    how: str  # which mutation, for the figures


def _wrong_value(rng: random.Random, like: Any) -> Any:
    """A JSON value of another type than `like` (a string for an object, a list for a string, ...).
    Never another string for a string: "" or "xxxx" may well be valid (silence, odd-length audio)."""
    choices: list[Any] = [None, True, 0, -1, 1.5, [], [like], {}, {"x": like}, "", "x" * 300]
    return rng.choice([c for c in choices if type(c) is not type(like)])


def _set(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    broken = copy.deepcopy(message)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return broken


def _get(message: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = message
    for key in path:
        value = value[key]
    return value


def _text(message: Any, *, tail: str = "") -> bytes:
    return (json.dumps(message)[: -1 if tail else None] + tail).encode()


@dataclass(frozen=True)
class Template:
    message: dict[str, Any]
    required: tuple[tuple[str, ...], ...]  # paths whose value must be of the type it has here
    ids: tuple[tuple[str, ...], ...] = ()  # paths holding ids: one far too long is refused
    base64: tuple[str, ...] | None = None  # path of the audio field, if any


Mutation = Callable[[random.Random, Template], tuple[Any, str]]


def wrong_type(rng: random.Random, t: Template) -> tuple[Any, str]:
    path = rng.choice(t.required)
    return _set(t.message, path, _wrong_value(rng, _get(t.message, path))), f"wrong_type:{'.'.join(path)}"


def overlong_id(rng: random.Random, t: Template) -> tuple[Any, str]:
    if not t.ids:
        return wrong_type(rng, t)
    path = rng.choice(t.ids)
    return _set(t.message, path, "i" * rng.choice([257, 4096, 70_000])), "overlong_id"


def bad_audio(rng: random.Random, t: Template) -> tuple[Any, str]:
    if t.base64 is None:
        return wrong_type(rng, t)
    data = rng.choice(
        [
            "é" * 8,  # not ASCII
            "\uff21" * 4,  # full-width letters
            "AAAA\u0000AAA",
            "AA==",  # one byte: half a sample (ACS); for the model, see below
            "@@not base64@@",
            "QUJD\nQUJD",  # whitespace inside
            "-_-_",  # the URL-safe alphabet
            '"},"x":"',  # an injection attempt
        ]
    )
    if data == "AA==" and t.base64[0] != "audioData":
        data = "AA="  # a model delta may be odd-length, so make it invalid base64 instead
    return _set(t.message, t.base64, data), "bad_audio"


def truncated(rng: random.Random, t: Template) -> tuple[Any, str]:
    text = json.dumps(t.message)
    return text[: rng.randrange(1, len(text) - 1)].encode(), "truncated"


def deep_nesting(rng: random.Random, t: Template) -> tuple[Any, str]:
    broken, _ = wrong_type(rng, t)  # invalid even for a parser that would follow the nesting
    return _text(broken, tail=', "nest": ' + "[" * DEEP + "]" * DEEP + "}"), "deep_nesting"


def huge_number(rng: random.Random, t: Template) -> tuple[Any, str]:
    path = rng.choice(t.required)
    broken = _set(t.message, path, "@HUGE@")
    return json.dumps(broken).replace('"@HUGE@"', HUGE_NUMBER).encode(), "huge_number"


def not_utf8(rng: random.Random, t: Template) -> tuple[Any, str]:
    text = json.dumps(_set(t.message, rng.choice(t.required), "@BAD@")).encode()
    return text.replace(b'"@BAD@"', b'"\xff\xfe\xc3\x28"'), "not_utf8"


def lone_surrogate(rng: random.Random, t: Template) -> tuple[Any, str]:
    path = rng.choice(t.required)
    return json.dumps(_set(t.message, path, "\ud800")).encode(), "lone_surrogate"  # as the escape \ud800


def not_an_object(rng: random.Random, t: Template) -> tuple[Any, str]:
    return json.dumps(rng.choice([[t.message], "text", 42, None, True, []])).encode(), "not_an_object"


def garbage(rng: random.Random, t: Template) -> tuple[Any, str]:
    return rng.randbytes(rng.randrange(1, 200)), "garbage"


MUTATIONS: tuple[Mutation, ...] = (
    wrong_type,
    wrong_type,
    overlong_id,
    bad_audio,
    truncated,
    deep_nesting,
    huge_number,
    not_utf8,
    lone_surrogate,
    not_an_object,
    garbage,
)


def _b64(n: int) -> str:
    return base64.b64encode(bytes(n)).decode()


ACS_TEMPLATES = (
    Template(
        {
            "kind": "AudioData",
            "audioData": {
                "timestamp": "2026-11-29T00:00:00.000Z",
                "participantRawID": "4:+14255550123",
                "data": _b64(960),
                "silent": False,
            },
        },
        required=(("kind",), ("audioData",), ("audioData", "data")),
        base64=("audioData", "data"),
    ),
    Template(
        {
            "kind": "AudioMetadata",
            "audioMetadata": {
                "subscriptionId": "s",
                "encoding": "PCM",
                "sampleRate": 24000,
                "channels": 1,
                "length": 960,
            },
        },
        required=(("kind",), ("audioMetadata",), ("audioMetadata", "sampleRate")),
    ),
    Template(
        {"kind": "DtmfData", "dtmfData": {"data": "5"}},
        required=(("kind",), ("dtmfData",), ("dtmfData", "data")),
    ),
)

MODEL_TEMPLATES = (
    Template(
        {
            "type": "response.output_audio.delta",
            "response_id": "resp_x",
            "item_id": "item_x",
            "output_index": 0,
            "content_index": 0,
            "delta": _b64(960),
        },
        required=(("type",), ("response_id",), ("item_id",), ("delta",)),
        ids=(("response_id",), ("item_id",)),
        base64=("delta",),
    ),
    Template(
        {"type": "response.created", "response": {"id": "resp_x", "status": "in_progress"}},
        required=(("type",), ("response",), ("response", "id")),
        ids=(("response", "id"),),
    ),
    Template(
        {"type": "response.done", "response": {"id": "resp_x", "status": "completed", "output": []}},
        required=(("type",), ("response",), ("response", "id")),
        ids=(("response", "id"),),
    ),
    Template(
        {
            "type": "response.function_call_arguments.done",
            "response_id": "resp_x",
            "item_id": "fc",
            "call_id": "call_x",
            "name": "end_call",
            "arguments": "{}",
        },
        required=(("type",), ("response_id",), ("call_id",), ("name",)),
        ids=(("response_id",), ("call_id",)),
    ),
    Template(
        {"type": "input_audio_buffer.speech_started", "item_id": "item_u", "audio_start_ms": 10},
        required=(("type",),),
    ),
    Template(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_u",
            "content_index": 0,
            "transcript": "hello",
        },
        required=(("type",), ("item_id",)),
        ids=(("item_id",),),
    ),
    Template({"type": "error", "error": {"code": "x", "message": "y"}}, required=(("type",), ("error",))),
)


def acs_message(rng: random.Random, max_frame_bytes: int) -> Bad:
    """One bad message for the ACS socket (including unknown kinds, binary and oversized frames)."""
    roll = rng.random()
    if roll < 0.05:
        return Bad(rng.randbytes(rng.randrange(1, 2000)), True, "binary")
    if roll < 0.08:  # well-formed audio, but over the host's per-message limit
        oversized = {"kind": "AudioData", "audioData": {"data": _b64(max_frame_bytes)}}
        return Bad(json.dumps(oversized).encode(), False, "oversized")
    if roll < 0.15:
        kind = rng.choice(["MarkData", "TranscriptionData", "Future.Kind", "k" * 80, "a b", "ü"])
        return Bad(json.dumps({"kind": kind, "data": {"x": 1}}).encode(), False, "unknown_kind")
    return _mutate(rng, rng.choice(ACS_TEMPLATES))


def model_event(rng: random.Random) -> Bad:
    """One bad server event for the model socket (including unknown types and binary frames)."""
    roll = rng.random()
    if roll < 0.05:
        return Bad(rng.randbytes(rng.randrange(1, 2000)), True, "binary")
    if roll < 0.15:
        kind = rng.choice(["rate_limits.updated", "response.output_audio_transcript.delta", "x" * 80, "A B"])
        return Bad(json.dumps({"type": kind, "delta": "hi"}).encode(), False, "unknown_type")
    return _mutate(rng, rng.choice(MODEL_TEMPLATES))


def _mutate(rng: random.Random, template: Template) -> Bad:
    mutation = rng.choice(MUTATIONS)
    value, how = mutation(rng, template)
    payload = value if isinstance(value, bytes) else json.dumps(value).encode()
    return Bad(payload, False, how)
