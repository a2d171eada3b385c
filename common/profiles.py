"""Instruction profiles: `<AOAI_PROFILES_DIR>/<name>.txt`, chosen per call by name.

The control plane checks that a profile exists and passes its name to the media host in the
transport URL (`?profile=<name>`); the media host loads the texts at start-up and uses the named
one for that call. The strict name pattern keeps a name safe as a file name (no separators, no dots).
Both apps resolve a relative AOAI_PROFILES_DIR against the app root (the repository root locally,
/app in the container), so they read the same files.

A profile may start with a header of `key: value` lines between two `---` lines, which the model
never sees: `language` (the phone manners' own lines, such as a reprompt: en, ja) and `greeting`
(`first`: the assistant greets as the call connects; `wait`: it waits for the caller's "hello", as
on an outbound call to a person).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
LANGUAGES = ("en", "ja")
GREETINGS = ("first", "wait")
_HEADER = re.compile(r"\A---\n(.*?)^---\n", re.DOTALL | re.MULTILINE)


@dataclass(frozen=True)
class Profile:
    instructions: str
    language: str = "en"
    greeting: Literal["first", "wait"] = "first"


class ProfileError(ValueError):
    """A profile file that cannot be used, in one line naming the file."""


def parse_profile(text: str, name: str = "profile") -> Profile:
    text = text.replace("\r\n", "\n")
    header = _HEADER.match(text)
    if header is None:
        return Profile(text.strip())
    fields: dict[str, str] = {}
    for line in header.group(1).splitlines():
        key, sep, value = (part.strip() for part in line.partition(":"))
        if not line.strip():
            continue
        if not sep or key not in ("language", "greeting"):
            raise ProfileError(
                f"{name}: header line {line.strip()[:40]!r} is not 'language: ...' or 'greeting: ...'"
            )
        fields[key] = value
    language, greeting = fields.get("language", "en"), fields.get("greeting", "first")
    if language not in LANGUAGES:
        raise ProfileError(f"{name}: language {language[:20]!r} is not one of {', '.join(LANGUAGES)}")
    if greeting not in GREETINGS:
        raise ProfileError(f"{name}: greeting {greeting[:20]!r} is not one of {', '.join(GREETINGS)}")
    return Profile(text[header.end() :].strip(), language, "wait" if greeting == "wait" else "first")


def available_profiles(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.txt") if p.is_file() and PROFILE_NAME.fullmatch(p.stem))


def load_profiles(directory: Path) -> dict[str, Profile]:
    return {
        name: parse_profile((directory / f"{name}.txt").read_text(encoding="utf-8"), f"{name}.txt")
        for name in available_profiles(directory)
    }


def profile_problem(directory: Path, name: str) -> str | None:
    """Why `name` cannot be used as a profile, or None. Lists the profiles that can."""
    available = available_profiles(directory)
    if PROFILE_NAME.fullmatch(name) and name in available:
        return None
    choices = ", ".join(available) if available else "none are installed"
    if not PROFILE_NAME.fullmatch(name):
        return f"profile names match {PROFILE_NAME.pattern}; available profiles: {choices}"
    return f"unknown profile {name!r}; available profiles: {choices}"


APP_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROFILES_DIR = "prompts"


def resolve_profiles_dir(value: str, app_root: Path = APP_ROOT) -> Path:
    path = Path(value)
    return path if path.is_absolute() else app_root / path
