"""All-in-one settings: read and validated once, at start-up, for both planes and the function keys.

In Azure the control plane runs on even with bad settings (each function answers 503 for the ones it
needs). Here one process serves everything, so any bad setting stops the start, like the media host,
except the ACS settings of a deployment without ACS (Twilio numbers only): then the ACS routes answer
503 and the Twilio routes serve.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from common.settings_reader import SettingsError, SettingsReader
from functions.settings import ControlSettings
from media_host.settings import MediaSettings

from .functions_host import FunctionKeys, keyed_functions

# A key travels as `?code=`: no `+` or `/` (base64's, mangled in a query string); long, not to be guessed.
KEY = re.compile(r"[A-Za-z0-9_=-]{32,}")
HOST_KEY = "FUNCTION_KEY"


@dataclass(frozen=True)
class AllInOneSettings:
    media: MediaSettings
    function_keys: FunctionKeys

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AllInOneSettings:
        """Raises SettingsError naming every missing or malformed setting of both planes."""
        r = SettingsReader(env)
        function_keys = _function_keys(r)
        control = ControlSettings.from_env(env)
        r.problems += [message for _, message in sorted(control.faults.items())]
        errors = []
        try:
            media = MediaSettings.from_env(env)
        except SettingsError as exc:
            errors.append(str(exc))
        # Both planes read some settings (MEDIA_HOST_URL, ACS_*): name each problem once.
        r.problems = [p for p in r.problems if not any(p in e for e in errors)]
        try:
            r.check("all-in-one")
        except SettingsError as exc:
            errors.append(str(exc))
        if errors:
            raise SettingsError("\n".join(errors))
        return cls(media=media, function_keys=function_keys)


def _function_keys(r: SettingsReader) -> FunctionKeys:
    """FUNCTION_KEY, the host key (required: never a random one), and FUNCTION_KEY_<FUNCTION NAME>,
    a function's own key (optional), e.g. FUNCTION_KEY_INCOMING_CALL for an Event Grid subscription."""
    own = {f"{HOST_KEY}_{function.upper()}": function for function in keyed_functions()}
    for name in sorted(n for n in r.env if n.startswith(f"{HOST_KEY}_") and n not in own):
        r.problems.append(f"{name} names no function that takes a key (known: {', '.join(sorted(own))})")

    def key(name: str) -> str | None:
        value = r.optional(name)
        if value is not None and not KEY.fullmatch(value):
            r.problems.append(
                f"{name} must be at least 32 letters, digits, '-', '_' or '=' (openssl rand -hex 32)"
            )
        return value

    host = key(HOST_KEY) or r.required(HOST_KEY)
    return FunctionKeys(host, {f: value for name, f in own.items() if (value := key(name)) is not None})
