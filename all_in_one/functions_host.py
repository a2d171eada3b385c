"""The Azure Functions host's part that the gateway needs: the HTTP triggers registered in
function_app.py, served by aiohttp, with the host's function-key check.

Requests and responses are translated to and from `azure.functions` objects and the registered
functions are called unchanged, so no control-plane code is duplicated here.
"""

from __future__ import annotations

import functools
import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from aiohttp import web

from function_app import app as function_app

ROUTE_PREFIX = "/api/"  # host.json extensions.http.routePrefix

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


@dataclass(frozen=True)
class HttpFunction:
    name: str
    trigger: dict[str, Any]  # the httpTrigger binding as the Functions host reads it
    handler: Handler

    @property
    def route(self) -> str:
        return str(self.trigger["route"])

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in self.trigger.get("methods") or ("GET", "POST"))

    @property
    def auth_level(self) -> str:  # "FUNCTION" | "ANONYMOUS" | "ADMIN"
        return str(self.trigger.get("authLevel", "FUNCTION")).upper()


@functools.cache
def registered_functions() -> dict[str, HttpFunction]:
    """The HTTP triggers of function_app.py, by function name.

    Cached: FunctionApp.get_functions() is one-shot in azure-functions 1.26 (a second call raises
    "does not have a unique function name"), so every user in a process shares this one reading.
    """
    functions = {}
    for f in function_app.get_functions():
        name = str(f.get_function_name())
        functions[name] = HttpFunction(name, json.loads(f.get_raw_bindings()[0]), f.get_user_function())
    return functions


@dataclass(frozen=True)
class FunctionKeys:
    """The keys the host accepts on non-anonymous routes, as in Azure: the host key opens every one, a
    function's own key only that function (so the key in an Event Grid subscription places no calls)."""

    host: str = field(repr=False)
    by_function: Mapping[str, str] = field(default_factory=dict, repr=False)

    def open(self, function: str, given: str) -> bool:
        keys = [key for key in (self.host, self.by_function.get(function)) if key]  # "" opens nothing
        return any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def keyed_functions() -> list[str]:
    """Names of the functions that need a key."""
    return sorted(name for name, f in registered_functions().items() if f.auth_level != "ANONYMOUS")


def add_function_routes(app: web.Application, *, keys: FunctionKeys) -> None:
    """Serve every registered HTTP trigger at /api/<route>, checking the key where the host would."""
    for function in registered_functions().values():
        for method in function.methods:
            app.router.add_route(method, ROUTE_PREFIX + function.route, _serve(function, keys))


def _serve(function: HttpFunction, keys: FunctionKeys) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        if function.auth_level != "ANONYMOUS" and not keys.open(function.name, given):
            # the Functions host answers 401 with no body when the key is missing or wrong
            return web.Response(status=401)
        response = await function.handler(await to_function_request(request))
        return to_aiohttp_response(response)

    return handle


async def to_function_request(request: web.Request) -> func.HttpRequest:
    params = {k: v for k, v in request.query.items() if k != "code"}
    return func.HttpRequest(
        request.method,
        str(request.url),
        headers=dict(request.headers),
        params=params,
        route_params=dict(request.match_info),
        body=await request.read(),
    )


def to_aiohttp_response(response: func.HttpResponse) -> web.Response:
    headers: dict[str, Any] = dict(response.headers)
    if response.mimetype and "Content-Type" not in headers and "content-type" not in headers:
        headers["Content-Type"] = f"{response.mimetype}; charset={response.charset or 'utf-8'}"
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)
