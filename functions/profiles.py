"""Instruction profiles: `<AOAI_PROFILES_DIR>/<name>.txt`, chosen per call by name.

The control plane only checks that a profile exists and passes its name to the media host in the
transport URL (`?profile=<name>`); the media host loads the text. The strict name pattern keeps the
name safe to use as a file name there (no path separators, no dots).
"""

from __future__ import annotations

import re
from pathlib import Path

PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def available_profiles(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.txt") if p.is_file() and PROFILE_NAME.match(p.stem))


def profile_problem(directory: Path, name: str) -> str | None:
    """Why `name` cannot be used as a profile, or None. Lists the profiles that can."""
    available = available_profiles(directory)
    if PROFILE_NAME.match(name) and name in available:
        return None
    choices = ", ".join(available) if available else "none are installed"
    if not PROFILE_NAME.match(name):
        return f"profile names match {PROFILE_NAME.pattern}; available profiles: {choices}"
    return f"unknown profile {name!r}; available profiles: {choices}"
