"""The softphone on the local stack's gateway: the page at `/`, its files, its WebSocket, and the
"Call me" steps of the setup guide we grew from (an ACS user token, then a call to that user).

It is served to this machine only. `make up` listens on every interface so a tunnel can bring ACS's
webhooks in, and the softphone calls keyed routes with the local function key: through a tunnel it
would lend that key to anyone. A request counts as local when it comes from loopback, names
localhost (or a loopback address) as its host and was not forwarded by a proxy or tunnel agent.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from common.identifiers import IdentifierError, parse_target
from common.voices import VOICES
from emulators.acs.emulator import AcsEmulator, EmulatedCall

from .browser_call import SOFTPHONE_CALLER, BrowserCall, CallRouter, PageError, bridge

if TYPE_CHECKING:
    from local_stack.recordings import Recordings

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
ACS_BUNDLE = STATIC / "vendor" / "acs-calling.js"  # built at set-up (web/acs-calling), never committed
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Original-Host")
FIRST_MESSAGE_TIMEOUT_S = 30.0
RECORDING_WAIT_S = 15.0  # the files are written once the emulator's side has ended too
CALL_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class SoftphoneContext:
    """What the softphone needs of the local stack."""

    gateway_url: str
    function_key: str
    incoming_call_url: str
    number: str  # our (emulated) number the page calls
    emulator: AcsEmulator | None  # None: real ACS (the page answers "Call me" with the ACS SDK)
    profiles: tuple[str, ...]
    default_profile: str
    default_voice: str
    router: CallRouter
    recordings: Recordings | None = None  # set by `make up`, which saves every call


CONTEXT = web.AppKey("softphone", SoftphoneContext)


def add_softphone(app: web.Application, context: SoftphoneContext) -> None:
    app[CONTEXT] = context
    app.router.add_get("/", _page)
    app.router.add_get("/softphone/config", _config)
    app.router.add_get("/softphone/ws", _socket)
    app.router.add_post("/softphone/token", _token)
    app.router.add_post("/softphone/call-me", _call_me)
    app.router.add_get("/softphone/calls/{call_id}/{name}", _download)
    app.router.add_static("/softphone/static/", STATIC, follow_symlinks=False)
    app.middlewares.append(_local_only)


def is_local(request: web.Request) -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        remote_is_loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False
    host = (request.url.host or "").strip("[]").lower()
    return remote_is_loopback and host in LOCAL_HOSTS


@web.middleware
async def _local_only(request: web.Request, handler: Any) -> web.StreamResponse:
    if (request.path == "/" or request.path.startswith("/softphone/")) and not is_local(request):
        raise web.HTTPForbidden(
            text="the softphone is served to this machine only: open http://localhost:<port>/ on it\n"
        )
    response: web.StreamResponse = await handler(request)
    return response


async def _page(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def _config(request: web.Request) -> web.Response:
    c = request.app[CONTEXT]
    return web.json_response(
        {
            "network": "emulated" if c.emulator is not None else "acs",
            "number": c.number,
            "profiles": list(c.profiles),
            "defaultProfile": c.default_profile,
            "voices": list(VOICES),
            "defaultVoice": c.default_voice,
            "acsBundle": ACS_BUNDLE.is_file(),
        }
    )


def _choice(value: Any, allowed: tuple[str, ...], what: str, default: str) -> str:
    if value in (None, ""):
        return default
    if not isinstance(value, str) or value not in allowed:
        raise PageError(f"unknown {what}; choose one of: {', '.join(allowed)}")
    return value


async def _socket(request: web.Request) -> web.WebSocketResponse:
    c = request.app[CONTEXT]
    ws = web.WebSocketResponse(max_msg_size=1 << 16, heartbeat=20.0)
    await ws.prepare(request)
    page = BrowserCall(ws)
    pump = asyncio.create_task(page.pump())
    try:
        ask = await _first_message(ws)
        if ask.get("type") == "watch":  # a call the ACS Calling SDK carries: the live view only
            await _watch(page, ask, c)
            return ws
        call = await _ring(page, ask, c)
        page.state("ringing", direction=call.direction)
        why = await bridge(page, call, c.emulator, c.router)  # type: ignore[arg-type]  # _ring checked it
        ended: dict[str, Any] = {"type": "ended", "why": why, "atMs": page.elapsed_ms()}
        if call.call_connection_id and c.recordings is not None:
            try:
                async with asyncio.timeout(RECORDING_WAIT_S):
                    saved = await c.recordings.wait(call.call_connection_id)
            except (TimeoutError, OSError):
                saved = None
            if saved is not None and saved.wav is not None:
                base = f"/softphone/calls/{call.call_connection_id}"
                ended.update(recording=f"{base}/recording.wav", transcript=f"{base}/transcript.json")
        page.send(ended)
    except PageError as exc:
        page.send({"type": "error", "message": str(exc)})
    finally:
        if page.call is not None and page.call.call_connection_id:
            c.router.by_call.pop(page.call.call_connection_id, None)
        page.close_outbox()
        await pump
        await ws.close()
    return ws


async def _first_message(ws: web.WebSocketResponse) -> dict[str, Any]:
    try:
        async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_S):
            msg = await ws.receive()
    except TimeoutError:
        raise PageError("no call request arrived") from None
    if msg.type != aiohttp.WSMsgType.TEXT:
        raise PageError("the first message must be a JSON call request")
    try:
        value = json.loads(msg.data)
    except ValueError:
        raise PageError("the call request is not JSON") from None
    if not isinstance(value, dict):
        raise PageError("the call request must be a JSON object")
    return value


async def _watch(page: BrowserCall, ask: dict[str, Any], c: SoftphoneContext) -> None:
    call_id = ask.get("callConnectionId")
    if not isinstance(call_id, str) or not CALL_ID.fullmatch(call_id):
        raise PageError("callConnectionId must be the id POST /softphone/call-me answered with")
    c.router.by_call[call_id] = page
    page.state("watching", callConnectionId=call_id)
    try:
        async for _ in page.ws:  # until the page goes away
            pass
    finally:
        if c.router.by_call.get(call_id) is page:
            del c.router.by_call[call_id]


async def _ring(page: BrowserCall, ask: dict[str, Any], c: SoftphoneContext) -> EmulatedCall:
    """Have the emulated network ring: our number from the page ("call"), or the page's user ("await")."""
    if c.emulator is None:
        raise PageError("ACS is real here: call your ACS number from a phone, or use Call me")
    kind = ask.get("type")
    if kind == "call":
        profile = _choice(ask.get("profile"), c.profiles, "profile", c.default_profile)
        voice = _choice(ask.get("voice"), VOICES, "voice", c.default_voice)
        headers = {"X-MS-Custom-Profile": profile, "X-MS-Custom-Voice": voice}
        return await c.emulator.incoming_call(
            c.incoming_call_url,
            caller=SOFTPHONE_CALLER,
            callee=c.number,
            display_name="Softphone",
            custom_context={"sipHeaders": headers},
        )
    if kind == "await":
        user = ask.get("userId")
        try:
            target = parse_target(user)
        except IdentifierError:
            raise PageError("userId must be the ACS user id /softphone/token issued") from None
        if target.phone_number is not None:
            raise PageError("userId must be an ACS user (8:acs:...), not a phone number")
        ringing: asyncio.Future[EmulatedCall] = asyncio.get_running_loop().create_future()
        c.router.awaiting[target.raw_id] = ringing
        page.state("waiting", userId=target.raw_id)
        try:
            async with asyncio.timeout(FIRST_MESSAGE_TIMEOUT_S):
                return await ringing
        except TimeoutError:
            raise PageError("no call to this user arrived: press Call me again") from None
        finally:
            c.router.awaiting.pop(target.raw_id, None)
    raise PageError('the first message must be {"type": "call"} or {"type": "await", "userId": ...}')


async def _token(request: web.Request) -> web.Response:
    """POST /api/token with the local key: the page never holds a key."""
    return await _keyed(request, "/api/token", {})


async def _call_me(request: web.Request) -> web.Response:
    """POST /api/calls to the page's ACS user, with its profile and voice."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    ask = {"target": body.get("userId"), "profile": body.get("profile"), "voice": body.get("voice")}
    return await _keyed(request, "/api/calls", {k: v for k, v in ask.items() if v not in (None, "")})


async def _keyed(request: web.Request, route: str, body: dict[str, Any]) -> web.Response:
    c = request.app[CONTEXT]
    url = f"{c.gateway_url}{route}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            http.post(url, json=body, headers={"x-functions-key": c.function_key}) as answer,
        ):
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return web.json_response({"error": f"{route} did not answer: {exc}"}, status=502)


async def _download(request: web.Request) -> web.StreamResponse:
    c = request.app[CONTEXT]
    saved = None if c.recordings is None else c.recordings.by_call.get(request.match_info["call_id"])
    name = request.match_info["name"]
    if saved is None or name not in ("recording.wav", "transcript.json"):
        raise web.HTTPNotFound(text="no such call recording\n")
    path = saved.wav if name == "recording.wav" else saved.transcript
    if path is None or not path.is_file():
        raise web.HTTPNotFound(text="this call has no such file\n")
    return web.FileResponse(path, headers={"Content-Disposition": f'attachment; filename="{path.name}"'})
