"""Mid-call actions through Twilio's REST API (hang up, transfer), as seed A's users have them.

`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` with Basic auth (the account SID and
auth token): `Status=completed` ends the call; `Twiml=<Response><Dial>...` takes it out of our
`<Connect><Stream>` and dials the target (twilio-openai.md §3.6). Every request is bounded in time
and recorded as a dependency, like Call Automation's.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import aiohttp

from common.errors import ProductError
from common.telemetry import CallIds, Telemetry
from common.twiml import dial

from .settings import TwilioSettings

REQUEST_TIMEOUT_SECONDS = 10.0


class TwilioError(ProductError):
    """A Twilio REST request failed; `str(exc)` is safe to log (no credential, no number)."""

    def __init__(self, message: str, *, status: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.transient = status is None  # no answer at all: Twilio may answer the next try


class TwilioControl:
    def __init__(self, settings: TwilioSettings, http: aiohttp.ClientSession, telemetry: Telemetry) -> None:
        self._settings = settings
        self._http = http
        self._telemetry = telemetry
        self._auth = {"Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)}

    async def hang_up(self, ids: CallIds, call_sid: str) -> bool:
        """For everyone; False if the call had already ended (Twilio answers 404)."""
        return await self._update(ids, call_sid, {"Status": "completed"}, "hang_up")

    async def transfer(self, ids: CallIds, call_sid: str, target: str) -> None:
        if not await self._update(ids, call_sid, {"Twiml": dial(target)}, "transfer"):
            raise TwilioError("the call had already ended", status=404)

    async def _update(self, ids: CallIds, call_sid: str, form: dict[str, str], operation: str) -> bool:
        s = self._settings
        url = f"{s.api_base_url}/2010-04-01/Accounts/{s.account_sid}/Calls/{call_sid}.json"
        started = time.monotonic()
        code = "error"
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                async with self._http.post(url, data=form, headers=self._auth) as response:
                    code = str(response.status)
                    if response.status == 404:
                        return False
                    if response.status >= 400:
                        body = await response.json(content_type=None)
                        detail = body.get("message") if isinstance(body, dict) else None
                        raise TwilioError(
                            f"Twilio {operation} answered HTTP {response.status}: {str(detail)[:200]}",
                            status=response.status,
                        )
                    return True
        except TimeoutError:
            code = "timeout"
            raise TwilioError(
                f"no answer from Twilio within {REQUEST_TIMEOUT_SECONDS:g}s", status=None
            ) from None
        except (aiohttp.ClientError, ValueError) as exc:
            code = "unreachable" if code == "error" else code
            raise TwilioError(f"Twilio {operation} failed ({type(exc).__name__})", status=None) from None
        finally:
            self._telemetry.dependency(
                f"Twilio {operation}",
                target=urlsplit(s.api_base_url).netloc,
                kind="HTTP",
                duration_s=time.monotonic() - started,
                success=code in ("200", "201", "204", "404"),
                result_code=code,
                ids=ids,
            )
