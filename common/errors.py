"""The base of the errors this product raises on purpose.

Its contract is that ``str(exc)`` is safe to log and to hand back: no secret, phone numbers masked.
So a handler can tell an expected failure (log its message) from a bug (log the traceback) by
catching ``ProductError`` rather than ``Exception``.
"""

from __future__ import annotations


class ProductError(Exception):
    """An expected failure, described in words safe to log."""

    transient = False  # whether trying again soon may succeed (a timeout, an unreachable service)
