"""The realtime model's voices, as both planes name them.

The media host takes its default from AOAI_VOICE; a call may ask for another (`?voice=` in the
transport URL), which the control plane checks against the same list before it sends it.
"""

from __future__ import annotations

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")


def voice_problem(name: str) -> str | None:
    """Why `name` is not a voice, or None. Lists the voices, never echoes the name."""
    return None if name in VOICES else f"voice must be one of: {', '.join(VOICES)}"
