"""Caller allow/deny lists: E.164 numbers or prefixes ending in `*` (`+8190*`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.settings_reader import E164

from .identifiers import Identifier

_PREFIX = re.compile(r"^\+\d{1,15}\*$")


@dataclass(frozen=True)
class CallerList:
    setting: str  # the variable it came from, named in the log when a call is turned away
    numbers: frozenset[str]
    prefixes: tuple[str, ...]

    def matches(self, number: str | None) -> bool:
        if number is None:
            return False
        return number in self.numbers or number.startswith(self.prefixes)


def parse_caller_list(setting: str, raw: str) -> tuple[CallerList, list[str]]:
    """The list and one problem per bad entry (entries are numbers: never quoted in a problem)."""
    numbers: set[str] = set()
    prefixes: list[str] = []
    problems: list[str] = []
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for position, entry in enumerate(entries, start=1):
        if E164.match(entry):
            numbers.add(entry)
        elif _PREFIX.match(entry):
            prefixes.append(entry[:-1])
        else:
            problems.append(
                f"{setting} entry #{position} is neither an E.164 number (+14255550100) "
                "nor a prefix ending in '*' (+1425*)"
            )
    return CallerList(setting, frozenset(numbers), tuple(prefixes)), problems


def screen(caller: Identifier, allow: CallerList | None, deny: CallerList | None) -> str | None:
    """Why the caller must be turned away, or None. The deny list wins over the allow list."""
    if deny is not None and deny.matches(caller.phone_number):
        return f"caller {caller.masked()} is on {deny.setting}"
    if allow is not None and not allow.matches(caller.phone_number):
        return f"caller {caller.masked()} is not on {allow.setting}"
    return None
