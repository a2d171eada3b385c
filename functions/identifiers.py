"""ACS communication identifiers: the wire model (in events) and the SDK classes (in requests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.phone import mask_phone
from common.settings_reader import E164
from common.telemetry import Telemetry

from .payload import PayloadError, optional_str

PHONE = "phoneNumber"
ACS_USER = "communicationUser"
_KINDS = (ACS_USER, PHONE, "microsoftTeamsUser", "microsoftTeamsApp", "teamsExtensionUser")


@dataclass(frozen=True)
class Identifier:
    kind: str  # "phoneNumber" | "communicationUser" | a Teams kind | "unknown"
    raw_id: str
    phone_number: str | None = None  # E.164, only for phoneNumber identifiers that carry one

    def masked(self) -> str:
        """How the identity appears in logs and responses: phone numbers masked, ids as they are."""
        if self.kind == PHONE:
            return mask_phone(self.phone_number or self.raw_id.removeprefix("4:"))
        return self.raw_id


def parse_identifier(value: Any, where: str) -> Identifier:
    """A CommunicationIdentifierModel (`{kind, rawId, phoneNumber: {value}, ...}`)."""
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be a communication identifier object")
    raw_id = optional_str(value, "rawId", where) or ""
    # Older payloads omit `kind`: the nested object's key, or the rawId prefix, says it.
    nested_kind = next((k for k in _KINDS if isinstance(value.get(k), dict)), "")
    kind = optional_str(value, "kind", where) or nested_kind
    if not kind:
        kind = PHONE if raw_id.startswith("4:") else ACS_USER if raw_id.startswith("8:acs:") else "unknown"
    nested = value.get(kind)
    details: dict[str, Any] = nested if isinstance(nested, dict) else {}
    phone: str | None = None
    if kind == PHONE:
        candidate = optional_str(details, "value", f"{where}.{kind}") or raw_id.removeprefix("4:")
        phone = candidate if E164.fullmatch(candidate) else None  # anonymous callers carry no number
        raw_id = raw_id or (f"4:{phone}" if phone else "")
    elif kind == ACS_USER:
        raw_id = raw_id or optional_str(details, "id", f"{where}.{kind}") or ""
    if not raw_id:
        raise PayloadError(f"{where} has no rawId")
    return Identifier(kind=kind, raw_id=raw_id, phone_number=phone)


def shown(telemetry: Telemetry, identity: Identifier) -> str:
    """How an identity appears in telemetry: numbers masked unless AUDIT_UNMASKED_NUMBERS, ids as they are."""
    if identity.kind == PHONE:
        return telemetry.show_number(identity.phone_number or identity.raw_id.removeprefix("4:"))
    return identity.raw_id
