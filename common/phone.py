"""Phone numbers are personal data: both planes log and return them masked.

`+819012345678` becomes `+81******5678`: the country-ish prefix and the last four digits are enough
to tell calls apart in a log or a support ticket, not enough to dial anyone.
"""

from __future__ import annotations

import re

_KEEP_HEAD = 2
_KEEP_TAIL = 4
# E.164-looking runs inside free text (ACS error messages, raw ids such as "4:+14255550100").
_NUMBER_IN_TEXT = re.compile(r"\+\d{7,15}")


def mask_phone(number: str) -> str:
    """Mask one phone number; anything that is not `+digits` is hidden entirely."""
    digits = number.removeprefix("+")
    if not digits.isdigit():
        return "*" * len(number)
    if len(digits) <= _KEEP_HEAD + _KEEP_TAIL:
        return "+" + "*" * len(digits)
    hidden = len(digits) - _KEEP_HEAD - _KEEP_TAIL
    return f"+{digits[:_KEEP_HEAD]}{'*' * hidden}{digits[-_KEEP_TAIL:]}"


def mask_phone_numbers(text: str) -> str:
    """Mask every E.164-looking number inside a piece of text (e.g. a message from ACS)."""
    return _NUMBER_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)
