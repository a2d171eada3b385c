"""Strict reading of JSON bodies from outside: every complaint says where and what was wrong.

Complaints name the field, never quote its value: a value may be personal data, or megabytes long.
"""

from __future__ import annotations

import json
from typing import Any

# Event Grid delivers at most 1 MB per request; nothing we accept is legitimately larger.
MAX_BODY_BYTES = 1024 * 1024
# Ids, types and names: GUIDs, short names, or serverCallId (base64 of a URL, about 200 characters).
MAX_ID_CHARS = 512
# incomingCallContext is an opaque token ACS hands back on answer/reject: a few KB, more with SIP headers.
MAX_CONTEXT_CHARS = 64 * 1024


class PayloadError(ValueError):
    """The request body is unusable; ``str(exc)`` is the message for the sender."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def decode_json(body: bytes) -> Any:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadError(f"body is larger than {MAX_BODY_BYTES} bytes", status=413)
    if not body.strip():
        raise PayloadError("body is empty; expected JSON")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON ({exc})") from None
    except RecursionError:
        raise PayloadError("body is nested too deeply") from None
    except ValueError:  # an integer over Python's 4,300-digit conversion limit
        raise PayloadError("body holds a number with too many digits") from None


def object_list(value: Any, what: str) -> list[dict[str, Any]]:
    """A JSON object or an array of JSON objects (how both Event Grid and ACS batch events)."""
    items = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise PayloadError(f"expected {what}: got an empty array")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            where = f"[{index}]" if isinstance(value, list) else "body"
            raise PayloadError(f"expected {what}: {where} is {_json_type(item)}, not an object")
    return items


def require_object(obj: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"{where}.{key} must be an object")
    return value


def require_str(obj: dict[str, Any], key: str, where: str, *, max_chars: int = MAX_ID_CHARS) -> str:
    value = optional_str(obj, key, where, max_chars=max_chars)
    if value is None:
        raise PayloadError(f"{where}.{key} must be a non-empty string")
    return value


def optional_str(obj: dict[str, Any], key: str, where: str, *, max_chars: int = MAX_ID_CHARS) -> str | None:
    """A non-empty string, or None when absent or of another type; refused when it could harm.

    Ids end up in URLs, log lines and telemetry: control characters would forge log lines, and a
    lone surrogate cannot be encoded into a URL at all.
    """
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        return None
    if len(value) > max_chars:
        raise PayloadError(f"{where}.{key} is longer than {max_chars} characters")
    if not value.isprintable():
        raise PayloadError(f"{where}.{key} holds control characters or lone surrogates")
    return value


def optional_int(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}.get(
        type(value), type(value).__name__
    )
