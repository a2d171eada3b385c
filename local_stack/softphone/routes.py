"""The softphone on the local stack's gateway: the page at `/`, its files, its WebSocket, and the
"Call me" steps of the setup guide we grew from (an ACS user token, then a call to that user).

It is served to this machine only. `make up` listens on every interface so a tunnel can bring ACS's
webhooks in, and the softphone calls keyed routes with the local function key: through a tunnel it
would lend that key to anyone. A request counts as local when it comes from loopback, names
localhost (or a loopback address) as its Host and was not forwarded by a proxy or tunnel agent; and,
since any web page the person has open could otherwise make their browser send requests here, a
request from a browser must come from the softphone's own origin and POST only JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
FORWARDING_HEADERS = (
    "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Original-Host", "X-Real-IP", "Via",
    "CF-Connecting-IP", "True-Client-IP",
)  # fmt: skip
FIRST_MESSAGE_TIMEOUT_S = 30.0
CALL_ME_WAIT_S = 30.0  # the page said it awaits a call: the call-me request should follow at once
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
    issued_users: set[str] = field(default_factory=set)  # the ACS users /softphone/token issued


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
    app.on_shutdown.append(close_pages)


def _local_host(authority: str) -> bool:
    """Whether a Host header or an origin's authority names this machine (any port)."""
    host = urlsplit(f"//{authority}").hostname or ""
    return host.lower() in LOCAL_HOSTS


def is_local(request: web.Request) -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        remote_is_loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False
    return remote_is_loopback and _local_host(request.headers.get("Host", ""))


def cross_site(request: web.Request) -> str | None:
    """Why a browser request may come from another site's page, or None."""
    origin = request.headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or parts.netloc != request.headers.get("Host", ""):
            return "requests from other origins are refused"
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return "cross-site requests are refused"
    if request.method == "POST" and request.content_type != "application/json":
        return "POST a JSON body (Content-Type: application/json)"
    return None


@web.middleware
async def _local_only(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path == "/" or request.path.startswith("/softphone/"):
        if not is_local(request):
            raise web.HTTPForbidden(
                text="the softphone is served to this machine only: open http://localhost:<port>/ on it\n"
            )
        why = cross_site(request)
        if why is not None:
            raise web.HTTPForbidden(text=f"the softphone answers its own page only: {why}\n")
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
    c.router.pages.add(ws)
    page = BrowserCall(ws)
    pump = asyncio.create_task(page.pump())
    try:
        ask = await _first_message(ws)
        if ask.get("type") == "watch":  # a call the ACS Calling SDK carries: the live view only
            await _watch(page, ask, c)
            return ws
        call = await _ring(page, ask, c)
        page.state("ringing", direction=call.direction)
        assert c.emulator is not None  # _ring rings only where ACS is emulated
        await bridge(page, call, c.emulator, c.router)
        page.send(await _ended(page, call, c))
    except PageError as exc:
        page.send({"type": "error", "message": str(exc)})
    except Exception:  # a bug here must not leave the page waiting in silence
        log.exception("softphone call failed")
        page.send({"type": "error", "message": "the softphone failed: see the local stack's log"})
    finally:
        c.router.pages.discard(ws)
        page.close_outbox()
        await pump
        await ws.close()
    return ws


async def _ended(page: BrowserCall, call: EmulatedCall, c: SoftphoneContext) -> dict[str, Any]:
    """How the call ended, with links to its files once `make up` has saved them."""
    ended: dict[str, Any] = {
        "type": "ended", "why": call.end_reason or "ended", "atMs": page.elapsed_ms(), "dropped": page.dropped(),
    }  # fmt: skip
    if call.call_connection_id and c.recordings is not None:
        try:
            async with asyncio.timeout(RECORDING_WAIT_S):
                saved = await c.recordings.wait(call.call_connection_id)
        except (TimeoutError, OSError):
            saved = None
        if saved is not None and saved.wav is not None:
            base = f"/softphone/calls/{call.call_connection_id}"
            ended.update(recording=f"{base}/recording.wav", transcript=f"{base}/transcript.json")
    return ended


async def close_pages(app: web.Application) -> None:
    """On shutdown: the pages' sockets would otherwise hold the server for its shutdown timeout."""
    for ws in list(app[CONTEXT].router.pages):
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"the local stack is stopping")


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
        c.router.forget(call_id, page)


async def _ring(page: BrowserCall, ask: dict[str, Any], c: SoftphoneContext) -> EmulatedCall:
    """Have the emulated network ring: our number from the page ("call"), or the page's user ("await")."""
    if c.emulator is None:
        raise PageError("ACS is real here: call your ACS number from a phone, or use Call me")
    kind = ask.get("type")
    if kind == "call":
        profile = _choice(ask.get("profile"), c.profiles, "profile", c.default_profile)
        voice = _choice(ask.get("voice"), VOICES, "voice", c.default_voice)
        headers = {"X-MS-Custom-Profile": profile, "X-MS-Custom-Voice": voice}
        call = await c.emulator.incoming_call(
            c.incoming_call_url,
            caller=SOFTPHONE_CALLER,
            callee=c.number,
            display_name="Softphone",
            custom_context={"sipHeaders": headers},
        )
        if call.delivery_status is not None and call.delivery_status >= 300:  # Event Grid would retry
            await c.emulator.caller_hangs_up(call)  # this caller will not wait for that
            raise PageError(f"incoming-call answered HTTP {call.delivery_status}: see the local stack's log")
        return call
    if kind == "await":
        user = ask.get("userId")
        try:
            target = parse_target(user)
        except IdentifierError:
            raise PageError("userId must be the ACS user id /softphone/token issued") from None
        if target.raw_id not in c.issued_users:
            raise PageError("userId must be an ACS user /softphone/token issued")
        if target.raw_id in c.router.awaiting:
            raise PageError("another page is already waiting for a call to this user")
        ringing: asyncio.Future[EmulatedCall] = asyncio.get_running_loop().create_future()
        c.router.awaiting[target.raw_id] = ringing
        page.state("waiting", userId=target.raw_id)
        gone = asyncio.create_task(page.ws.receive())  # a page that closes stops waiting
        try:
            waits: set[asyncio.Future[Any]] = {ringing, gone}
            done, _ = await asyncio.wait(waits, timeout=CALL_ME_WAIT_S, return_when="FIRST_COMPLETED")
            if ringing not in done:
                raise PageError("no call to this user arrived: press Call me again")
            return ringing.result()
        finally:
            gone.cancel()  # before the bridge reads the socket: one reader at a time
            with contextlib.suppress(asyncio.CancelledError):
                await gone
            if c.router.awaiting.get(target.raw_id) is ringing:
                del c.router.awaiting[target.raw_id]
    raise PageError('the first message must be {"type": "call"} or {"type": "await", "userId": ...}')


async def _token(request: web.Request) -> web.Response:
    """POST /api/token with the local key (the page never holds a key); its user may then be called."""
    status, answer = await _keyed(request, "/api/token", {})
    if status == 200 and isinstance(answer, dict) and isinstance(answer.get("userId"), str):
        request.app[CONTEXT].issued_users.add(answer["userId"])
    return web.json_response(answer, status=status)


async def _call_me(request: web.Request) -> web.Response:
    """POST /api/calls to the page's ACS user, with its profile and voice: to no one else (the local key
    could call any number on OUTBOUND_ALLOW_LIST)."""
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "the body must be JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the body must be a JSON object"}, status=400)
    if body.get("userId") not in request.app[CONTEXT].issued_users:
        return web.json_response({"error": "userId must be an ACS user /softphone/token issued"}, status=400)
    ask = {"target": body["userId"], "profile": body.get("profile"), "voice": body.get("voice")}
    status, answer = await _keyed(
        request, "/api/calls", {k: v for k, v in ask.items() if v not in (None, "")}
    )
    return web.json_response(answer, status=status)


async def _keyed(request: web.Request, route: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST to a keyed route of this gateway with the local function key: its status and JSON answer."""
    c = request.app[CONTEXT]
    url = f"{c.gateway_url}{route}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            http.post(url, json=body, headers={"x-functions-key": c.function_key}) as answer,
        ):
            try:
                return answer.status, await answer.json(content_type=None)
            except ValueError:
                return 502, {"error": f"{route} answered HTTP {answer.status} without JSON"}
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 502, {"error": f"{route} did not answer: {exc}"}


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
