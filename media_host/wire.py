"""Decoding JSON from outside with msgspec: one pass that parses and type-checks, and one error type
whose reason comes from a bounded set (our schema's paths and type names, never the sender's text),
so a flood of bad messages can be counted by reason without minting new log lines."""

from __future__ import annotations

from typing import TypeVar

import msgspec

T = TypeVar("T")


class WireError(ValueError):
    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path  # where in the message, e.g. "$.audioData.data"; "" for the whole message


def decode(decoder: msgspec.json.Decoder[T], text: str | bytes) -> T:
    try:
        return decoder.decode(text)
    except msgspec.ValidationError as exc:
        reason, path = _validation_reason(str(exc))
    except msgspec.DecodeError:
        reason, path = "not_json", ""
    except RecursionError:  # absurdly deep nesting
        reason, path = "too_deep", ""
    except UnicodeEncodeError:  # a str holding lone surrogates
        reason, path = "not_utf8", ""
    raise WireError(reason, path)


def _validation_reason(message: str) -> tuple[str, str]:
    what, _, path = message.partition(" - at `")
    path = path.rstrip("`")
    if what.startswith("Invalid value"):  # an unexpected tag: msgspec quotes the sender's value
        what = "unexpected value"
    elif what.startswith("Expected `object`") and not path:
        return "not_object", ""
    return (f"{what} at {path}" if path else what)[:120], path
