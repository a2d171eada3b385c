"""Reading settings from the environment, shared by both planes.

Every problem is collected and reported together, each naming the variable, so a misconfigured
deployment fails with one readable message instead of one error per restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

# Whole values only, with fullmatch: `re.match` with `$` lets a trailing newline through.
GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
E164 = re.compile(r"\+[1-9]\d{6,14}")
ACS_USER = re.compile(r"8:acs:[0-9a-fA-F-]{36}_[0-9A-Za-z_-]{1,256}")


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message names each of them."""


class SettingsReader:
    """Reads typed values and collects a problem per bad variable instead of raising at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            self.problems.append(f"{name} is required but not set")
            return ""
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={raw} is out of range [{low:g}, {high:g}]")
            return default
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.number(name, default, low=low, high=high)
        if value != int(value):
            self.problems.append(f"{name}={self.optional(name)} is not a whole number")
            return default
        return int(value)

    def guid(self, name: str) -> str:
        """A required GUID, e.g. the ACS immutable resource id (a common mistake is the ARM path)."""
        value = self.required(name)
        if value and not GUID.fullmatch(value):
            self.problems.append(
                f"{name} must be the resource's immutable id (a GUID), not its ARM path or name"
            )
        return value

    def flag(self, name: str) -> bool:
        raw = self.optional(name)
        if raw is None:
            return False
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            self.problems.append(f"{name}={raw!r} must be true or false")
            return False
        return raw.lower() in ("true", "1", "yes")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            self.problems.append(f"{name}={raw!r} must be one of {', '.join(allowed)}")
            return default
        return value

    def optional_url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            # not the value: a connection string pasted into the wrong setting would print its key
            self.problems.append(
                f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
            return None
        return raw.rstrip("/")

    def url(self, name: str, default: str, *, schemes: tuple[str, ...]) -> str:
        return self.optional_url(name, schemes=schemes) or default

    def required_url(self, name: str, *, schemes: tuple[str, ...]) -> str:
        if self.optional(name) is None:
            self.problems.append(f"{name} is required but not set")
            return "ws://invalid"
        return self.optional_url(name, schemes=schemes) or "ws://invalid"

    def connection_string(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            parse_connection_string(raw)
        except ValueError as exc:
            self.problems.append(f"{name} is malformed: {exc}")
            return None
        return raw

    def call_target(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is not None and not (E164.fullmatch(raw) or ACS_USER.fullmatch(raw)):
            self.problems.append(
                f"{name}={raw!r} must be an E.164 number (+14255550100) or an ACS user id (8:acs:...)"
            )
            return None
        return raw

    def text_file(self, name: str) -> str | None:
        path = self.optional(name)
        if path is None:
            return None
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            self.problems.append(f"{name}={path!r} cannot be read: {exc.strerror}")
            return None
        if not text:
            self.problems.append(f"{name}={path!r} is empty")
        return text or None

    def check(self, what: str) -> None:
        if self.problems:
            raise SettingsError(f"Invalid {what} settings:\n  - " + "\n  - ".join(self.problems))


def parse_connection_string(value: str) -> tuple[str, str]:
    """`endpoint=https://x.communication.azure.com/;accesskey=<base64>` -> (endpoint, key).

    The message of the ValueError never contains the key.
    """
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip().lower()] = v.strip()
    endpoint, key = fields.get("endpoint"), fields.get("accesskey")
    if not endpoint or not key:
        raise ValueError("expected 'endpoint=https://<resource>.communication.azure.com/;accesskey=<key>'")
    if urlsplit(endpoint).scheme not in ("https", "http"):
        raise ValueError("its endpoint must start with https://")
    return endpoint, key
