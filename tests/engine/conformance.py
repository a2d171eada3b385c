"""What a GA Realtime server event must look like (reference/protocols.md section 6.6).

`problems(events)` returns every way a recorded stream of server events breaks these rules, so a
test can assert it is empty and see all the breakage at once.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from media_host import realtime_protocol

# protocols.md section 6.6, GA names, as written there.
GA_SERVER_EVENTS = frozenset(
    {
        # session
        "session.created",
        "session.updated",
        # VAD
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "input_audio_buffer.cleared",
        "input_audio_buffer.timeout_triggered",
        # items
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.truncated",
        "conversation.item.deleted",
        # user transcript
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
        # response
        "response.created",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.done",
        # audio out
        "response.output_audio.delta",
        "response.output_audio.done",
        # audio transcript
        "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done",
        # text
        "response.output_text.delta",
        "response.output_text.done",
        # tools
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        # misc
        "error",
        "rate_limits.updated",
    }
)
# The answer to `conversation.item.retrieve` (a client event of section 6.5) is not in 6.6's table.
WITH_RETRIEVE = GA_SERVER_EVENTS | {"conversation.item.retrieved"}

_STR, _INT, _OBJ, _LIST = str, int, dict, list
_NULLABLE_STR = (str, type(None))
_PART = {"response_id": _STR, "item_id": _STR, "output_index": _INT, "content_index": _INT}
REQUIRED: dict[str, dict[str, Any]] = {
    "session.created": {"session": _OBJ},
    "session.updated": {"session": _OBJ},
    "input_audio_buffer.speech_started": {"audio_start_ms": _INT, "item_id": _STR},
    "input_audio_buffer.speech_stopped": {"audio_end_ms": _INT, "item_id": _STR},
    "input_audio_buffer.committed": {"item_id": _STR, "previous_item_id": _NULLABLE_STR},
    "input_audio_buffer.cleared": {},
    "conversation.item.added": {"item": _OBJ, "previous_item_id": _NULLABLE_STR},
    "conversation.item.done": {"item": _OBJ},
    "conversation.item.truncated": {"item_id": _STR, "content_index": _INT, "audio_end_ms": _INT},
    "conversation.item.deleted": {"item_id": _STR},
    "conversation.item.retrieved": {"item": _OBJ},
    "conversation.item.input_audio_transcription.completed": {
        "item_id": _STR,
        "content_index": _INT,
        "transcript": _STR,
        "usage": _OBJ,
    },
    "response.created": {"response": _OBJ},
    "response.output_item.added": {"response_id": _STR, "output_index": _INT, "item": _OBJ},
    "response.output_item.done": {"response_id": _STR, "output_index": _INT, "item": _OBJ},
    "response.content_part.added": {**_PART, "part": _OBJ},
    "response.content_part.done": {**_PART, "part": _OBJ},
    "response.output_audio.delta": {**_PART, "delta": _STR},
    "response.output_audio.done": _PART,
    "response.output_audio_transcript.delta": {**_PART, "delta": _STR},
    "response.output_audio_transcript.done": {**_PART, "transcript": _STR},
    "response.output_text.delta": {**_PART, "delta": _STR},
    "response.output_text.done": {**_PART, "text": _STR},
    "response.function_call_arguments.delta": {
        "response_id": _STR,
        "item_id": _STR,
        "output_index": _INT,
        "call_id": _STR,
        "delta": _STR,
    },
    "response.function_call_arguments.done": {
        "response_id": _STR,
        "item_id": _STR,
        "output_index": _INT,
        "call_id": _STR,
        "name": _STR,
        "arguments": _STR,
    },
    "response.done": {"response": _OBJ},
    "error": {"error": _OBJ},
}
RESPONSE_STATUSES = {"completed", "cancelled", "failed", "incomplete", "in_progress"}
CANCEL_REASONS = {"turn_detected", "client_cancelled", "max_output_tokens", "content_filter"}
PER_RESPONSE = {t for t, fields in REQUIRED.items() if "response_id" in fields}


def problems(events: list[dict[str, Any]], allowed: frozenset[str] = GA_SERVER_EVENTS) -> list[str]:
    found: list[str] = []
    for n, event in enumerate(events):
        found += [f"#{n} {event.get('type')}: {p}" for p in _event_problems(event, allowed)]
    found += _order_problems(events)
    return found


def _event_problems(event: dict[str, Any], allowed: frozenset[str]) -> list[str]:
    kind = event.get("type")
    if kind not in allowed:
        return [f"type {kind!r} is not a GA server event"]
    out: list[str] = []
    if not isinstance(event.get("event_id"), str) or not event["event_id"]:
        out.append("no event_id")
    for name, types in REQUIRED.get(str(kind), {}).items():
        if name not in event:
            out.append(f"missing {name}")
        elif not isinstance(event[name], types) or isinstance(event[name], bool):
            out.append(f"{name} is {type(event[name]).__name__}")
    if out:
        return out
    try:
        realtime_protocol.parse_server_event(json.dumps(event))  # our own media host must read it
    except realtime_protocol.MalformedEvent as exc:
        out.append(f"media_host cannot parse it: {exc}")
    if kind == "response.output_audio.delta":
        try:
            pcm = base64.b64decode(event["delta"], validate=True)
        except binascii.Error:
            return [*out, "delta is not base64"]
        if not pcm or len(pcm) % 2:
            out.append(f"delta is {len(pcm)} bytes, not whole PCM16 samples")
    elif kind == "response.function_call_arguments.done":
        try:
            if not isinstance(json.loads(event["arguments"]), dict):
                out.append("arguments is not a JSON object")
        except ValueError:
            out.append("arguments is not JSON")
    elif kind == "response.done":
        out += _response_problems(event["response"])
    elif kind in ("response.created",):
        if not isinstance(event["response"].get("id"), str):
            out.append("response.id missing")
    elif kind == "error":
        error = event["error"]
        for name in ("type", "code", "message"):
            if not isinstance(error.get(name), str):
                out.append(f"error.{name} missing")
    if "item" in REQUIRED.get(str(kind), {}):
        out += _item_problems(event["item"])
    return out


def _response_problems(response: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if not isinstance(response.get("id"), str):
        out.append("response.id missing")
    status = response.get("status")
    if status not in RESPONSE_STATUSES:
        out.append(f"response.status {status!r}")
    if status == "cancelled" and (response.get("status_details") or {}).get("reason") not in CANCEL_REASONS:
        out.append(f"cancelled without a known reason: {response.get('status_details')}")
    if not isinstance(response.get("output"), list):
        out.append("response.output is not a list")
    else:
        for item in response["output"]:
            out += _item_problems(item)
    usage = response.get("usage")
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(k), int) for k in ("total_tokens", "input_tokens", "output_tokens")
    ):
        out.append(f"response.usage malformed: {usage}")
    return out


def _item_problems(item: dict[str, Any]) -> list[str]:
    out: list[str] = []
    if item.get("object") != "realtime.item" or not isinstance(item.get("id"), str):
        out.append(f"item without object/id: {item}")
    kind = item.get("type")
    if kind == "message":
        if item.get("role") not in ("user", "assistant", "system") or not isinstance(
            item.get("content"), list
        ):
            out.append(f"message item malformed: {item}")
        for part in item.get("content") or []:
            if part.get("type") not in ("input_audio", "input_text", "output_audio", "output_text"):
                out.append(f"content part type {part.get('type')!r} is not GA")
    elif kind == "function_call":
        if not all(isinstance(item.get(k), str) for k in ("call_id", "name", "arguments")):
            out.append(f"function_call item malformed: {item}")
    elif kind == "function_call_output":
        if not all(isinstance(item.get(k), str) for k in ("call_id", "output")):
            out.append(f"function_call_output item malformed: {item}")
    else:
        out.append(f"item type {kind!r}")
    return out


def _order_problems(events: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    if events and events[0].get("type") != "session.created":
        out.append("the first event is not session.created")
    created: set[str] = set()
    done: set[str] = set()
    for n, event in enumerate(events):
        kind = event.get("type")
        if kind == "response.created":
            created.add(event["response"]["id"])
        elif kind == "response.done":
            rid = event["response"]["id"]
            if rid not in created or rid in done:
                out.append(f"#{n} response.done for {rid} without one response.created before it")
            done.add(rid)
        elif kind in PER_RESPONSE:
            rid = event.get("response_id")
            if rid not in created:
                out.append(f"#{n} {kind} before response.created of {rid}")
            if rid in done:
                out.append(f"#{n} {kind} after response.done of {rid}")
    live = created - done
    if len(live) > 1:
        out.append(f"responses never finished: {sorted(live)}")
    return out
