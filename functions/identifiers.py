"""ACS communication identifiers in the control plane's payloads: the shared codec, read strictly.

Strings are read by `payload.optional_str` (length, control characters) and every complaint is a
PayloadError naming the field, like the rest of a payload's.
"""

from __future__ import annotations

from typing import Any

from common.identifiers import Identifier, IdentifierError, from_wire

from .payload import PayloadError, optional_str

__all__ = ["Identifier", "parse_identifier"]


def parse_identifier(value: Any, where: str) -> Identifier:
    """A CommunicationIdentifierModel (`{kind, rawId, phoneNumber: {value}, ...}`)."""
    try:
        return from_wire(value, where, read=optional_str)
    except IdentifierError as exc:
        raise PayloadError(str(exc)) from None
