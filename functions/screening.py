"""Phone number lists (caller screening, outbound allow list): E.164 numbers or prefixes ending in `*`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.settings_reader import E164

from .identifiers import Identifier

_PREFIX = re.compile(r"\+\d{1,15}\*")


@dataclass(frozen=True)
class NumberList:
    setting: str  # the variable it came from, named in the log when a call is turned away
    numbers: frozenset[str]
    prefixes: tuple[str, ...]

    def matches(self, number: str | None) -> bool:
        if number is None:
            return False
        return number in self.numbers or number.startswith(self.prefixes)


def parse_number_list(setting: str, raw: str) -> tuple[NumberList, list[str]]:
    """The list and one problem per bad entry (entries are numbers: never quoted in a problem)."""
    numbers: set[str] = set()
    prefixes: list[str] = []
    problems: list[str] = []
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    for position, entry in enumerate(entries, start=1):
        if E164.fullmatch(entry):
            numbers.add(entry)
        elif _PREFIX.fullmatch(entry):
            prefixes.append(entry[:-1])
        else:
            problems.append(
                f"{setting} entry #{position} is neither an E.164 number (+14255550100) "
                "nor a prefix ending in '*' (+1425*)"
            )
    return NumberList(setting, frozenset(numbers), tuple(prefixes)), problems


def screen(caller: Identifier, allow: NumberList | None, deny: NumberList | None) -> str | None:
    """Why the caller must be turned away, or None. The deny list wins over the allow list."""
    if deny is not None and deny.matches(caller.phone_number):
        return f"caller {caller.masked()} is on {deny.setting}"
    if allow is not None and not allow.matches(caller.phone_number):
        return f"caller {caller.masked()} is not on {allow.setting}"
    return None
