"""Instruction profiles: `<AOAI_PROFILES_DIR>/<name>.txt`, chosen per call by name.

The control plane checks that a profile exists and passes its name to the media host in the
transport URL (`?profile=<name>`); the media host loads the texts at start-up and uses the named
one for that call. The strict name pattern keeps a name safe as a file name (no separators, no dots).
Both apps resolve a relative AOAI_PROFILES_DIR against the app root (the repository root locally,
/app in the container), so they read the same files.
"""

from __future__ import annotations

import re
from pathlib import Path

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def available_profiles(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.txt") if p.is_file() and PROFILE_NAME.fullmatch(p.stem))


def load_profiles(directory: Path) -> dict[str, str]:
    return {
        name: (directory / f"{name}.txt").read_text(encoding="utf-8").strip()
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
