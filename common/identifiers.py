"""ACS communication identifiers, converted between their forms in this one place.

- a raw id: `4:+14255550100` (a phone number), `8:acs:<resource id>_<user>` (an ACS user), or
  another prefix for the Teams kinds;
- a target, as settings and `POST /api/calls` take it: an E.164 number or an ACS user id;
- the wire model (CommunicationIdentifierModel) in events and REST bodies:
  `{"kind": "phoneNumber", "rawId": "4:+1...", "phoneNumber": {"value": "+1..."}}`, or
  `{"kind": "communicationUser", "rawId": "8:acs:...", "communicationUser": {"id": "8:acs:..."}}`.

The SDK's classes are made from an `Identifier` in `common.call_automation`, which owns the SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ProductError
from .phone import mask_phone
from .settings_reader import ACS_USER as ACS_USER_ID
from .settings_reader import E164

PHONE = "phoneNumber"
ACS_USER = "communicationUser"
_KINDS = (ACS_USER, PHONE, "microsoftTeamsUser", "microsoftTeamsApp", "teamsExtensionUser")
TARGET_FORMS = "an E.164 number (+14255550100) or an ACS user id (8:acs:<resource id>_<user>)"
_PHONE_PREFIX = "4:"
_ACS_USER_PREFIX = "8:acs:"

# Reads one string field: a non-empty string, or None. The control plane passes its stricter reader
# (length and control characters), which raises its own errors.
TextReader = Callable[[dict[str, Any], str, str], str | None]


def _text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


class IdentifierError(ProductError, ValueError):
    """An identifier is unusable; the message names where it was (never its value)."""


@dataclass(frozen=True)
class Identifier:
    kind: str  # PHONE | ACS_USER | a Teams kind | "unknown"
    raw_id: str
    phone_number: str | None = None  # E.164, only for phone identifiers that carry one (not anonymous)

    def shown(self, show_number: Callable[[str], str]) -> str:
        """How the identity appears outside: a phone number as `show_number` shows it, other ids as they are."""
        return show_number(self._number) if self.kind == PHONE else self.raw_id

    def masked(self) -> str:
        return self.shown(mask_phone)

    def is_user_of(self, resource_id: str) -> bool:
        """An ACS user of that resource (its raw id names the resource's immutable id)."""
        prefix = f"{_ACS_USER_PREFIX}{resource_id.lower()}_"
        return self.kind == ACS_USER and self.raw_id.lower().startswith(prefix)

    def wire(self) -> dict[str, Any]:
        """The CommunicationIdentifierModel, with the kind's details as ACS sends them."""
        model: dict[str, Any] = {"kind": self.kind, "rawId": self.raw_id}
        if self.kind == PHONE:
            model[PHONE] = {"value": self._number}
        elif self.kind == ACS_USER:
            model[ACS_USER] = {"id": self.raw_id}
        return model

    @property
    def _number(self) -> str:
        return self.phone_number or self.raw_id.removeprefix(_PHONE_PREFIX)


def parse_target(value: object, where: str = "target") -> Identifier:
    """A target (E.164 number or ACS user id), whole values only."""
    if isinstance(value, str) and E164.fullmatch(value):
        return Identifier(PHONE, _PHONE_PREFIX + value, value)
    if isinstance(value, str) and ACS_USER_ID.fullmatch(value):
        return Identifier(ACS_USER, value)
    raise IdentifierError(f"{where} must be {TARGET_FORMS}")


def from_raw_id(raw_id: str) -> Identifier:
    """Any raw id; the kind is read from its prefix, as ACS does."""
    kind = _kind_of(raw_id)
    return Identifier(kind, raw_id, _e164(raw_id.removeprefix(_PHONE_PREFIX)) if kind == PHONE else None)


def from_wire(value: Any, where: str, *, read: TextReader = _text) -> Identifier:
    """A CommunicationIdentifierModel; `where` is its path in the payload, for the error message."""
    if not isinstance(value, dict):
        raise IdentifierError(f"{where} must be a communication identifier object")
    raw_id = read(value, "rawId", where) or ""
    # Older payloads omit `kind`: the nested object's key, or the rawId prefix, says it.
    nested_kind = next((k for k in _KINDS if isinstance(value.get(k), dict)), None)
    kind = read(value, "kind", where) or nested_kind or _kind_of(raw_id)
    nested = value.get(kind)
    details: dict[str, Any] = nested if isinstance(nested, dict) else {}
    phone: str | None = None
    if kind == PHONE:
        phone = _e164(read(details, "value", f"{where}.{kind}") or raw_id.removeprefix(_PHONE_PREFIX))
        raw_id = raw_id or (_PHONE_PREFIX + phone if phone else "")
    elif kind == ACS_USER:
        raw_id = raw_id or read(details, "id", f"{where}.{kind}") or ""
    if not raw_id:
        raise IdentifierError(f"{where} has no rawId")
    return Identifier(kind, raw_id, phone)


def _kind_of(raw_id: str) -> str:
    if raw_id.startswith(_PHONE_PREFIX):
        return PHONE
    return ACS_USER if raw_id.startswith(_ACS_USER_PREFIX) else "unknown"


def _e164(candidate: str) -> str | None:
    return candidate if E164.fullmatch(candidate) else None  # anonymous callers carry no number
