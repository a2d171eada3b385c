"""The slice of Twilio's REST API the product calls: updating a live call (twilio-openai.md §3.6).

`POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`, a form with `Status=completed` (hang
up) or `Twiml=…` (new instructions, such as a `<Dial>` to transfer). HTTP Basic with
AccountSid:AuthToken is checked before anything else, as Twilio does (401, error 20003). Errors
have Twilio's JSON shape; the codes are Twilio's (20003, 20004, 20404, 21220), except 21200, which
stands for any form the stand-in does not take. Every request is recorded, refused or not; what an
update does to the call is the emulator's business (`CallUpdater`).
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from emulators.serving import serve

from .waiting import Changes

_CALL = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Calls/(?P<call>[^/]+)\.json$")


@dataclass(frozen=True)
class RestRequest:
    method: str
    path: str
    form: dict[str, str]
    status: int  # what the stand-in answered
    call_sid: str | None
    at: float = field(default_factory=time.monotonic)


class RestError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# Applies an update to call `sid` and returns the call resource, or None when there is no such call
# (any more); raises RestError for an update it refuses.
CallUpdater = Callable[[str, Mapping[str, str]], dict[str, Any] | None]


class TwilioRestStandIn:
    def __init__(self, account_sid: str, auth_token: str, update: CallUpdater) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[RestRequest] = []
        self._update = update
        self._changes = Changes()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`, standing in for `https://api.twilio.com`."""
        if self._base_url is None:
            raise RuntimeError("the REST stand-in is not serving; await serve() first")
        return self._base_url

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner, self._base_url = await serve(app, host, port)
        return self._base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait_for(
        self, predicate: Callable[[RestRequest], bool] = lambda r: True, timeout: float = 5.0
    ) -> RestRequest:
        """The first recorded request that `predicate` accepts, waiting for it if need be."""
        found: list[RestRequest] = []

        def seen() -> bool:
            found[:] = [r for r in self.requests if predicate(r)][:1]
            return bool(found)

        await self._changes.wait_until(seen, timeout)
        return found[0]

    async def _handle(self, request: web.Request) -> web.Response:
        form = {name: str(value) for name, value in (await request.post()).items()}
        match = _CALL.match(request.path)
        call_sid = match["call"] if match else None
        try:
            self._authenticate(request.headers.get("Authorization", ""))
            if match is None or match["account"] != self.account_sid:
                raise RestError(404, 20404, f"The requested resource {request.path} was not found")
            if request.method != "POST":
                raise RestError(405, 20004, "Method not allowed")
            resource = self._update(match["call"], form)
            if resource is None:
                raise RestError(404, 20404, f"The requested resource {request.path} was not found")
            response = web.json_response(resource)
        except RestError as exc:
            body = {
                "code": exc.code,
                "message": exc.message,
                "more_info": f"https://www.twilio.com/docs/errors/{exc.code}",
                "status": exc.status,
            }
            response = web.json_response(body, status=exc.status)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        self.requests.append(RestRequest(request.method, request.path, form, response.status, call_sid))
        self._changes.notify()
        return response

    def _authenticate(self, header: str) -> None:
        try:
            auth = aiohttp.BasicAuth.decode(header)
        except ValueError:
            raise RestError(401, 20003, "Authenticate") from None
        # Both compared in full either way: the time spent does not say which one was wrong.
        user_ok = hmac.compare_digest(auth.login.encode(), self.account_sid.encode())
        password_ok = hmac.compare_digest(auth.password.encode(), self.auth_token.encode())
        if not (user_ok and password_ok):
            raise RestError(401, 20003, "Authenticate")
