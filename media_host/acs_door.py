"""`GET /ws/media`: where ACS dials for every call. ACS's JWT is checked before the upgrade."""

from __future__ import annotations

import logging

from aiohttp import web

from common.acs_jwt import JwtRejected
from common.telemetry import CallIds, checked_id, checked_server_call_id

from .acs_leg import AcsLeg
from .host import HOST, Door, door

log = logging.getLogger(__name__)


@door
async def media_socket(request: web.Request) -> web.StreamResponse:
    host = request.app[HOST]
    assert host.verifier is not None and host.control is not None  # the route exists only with ACS
    door = Door(host, request)
    door.not_draining()
    try:
        await host.verifier.verify_authorization(request.headers.get("Authorization"))
    except JwtRejected as exc:
        log.warning("refused media socket: %s", exc.for_log)
        if exc.reason == "jwks_unavailable":  # our outage, not the sender's fault: ACS may retry
            raise door.refuse(503, "jwks_unavailable", f"cannot verify ACS tokens right now: {exc}") from None
        host.telemetry.metric("rejected_jwts", 1, reason=exc.reason)
        raise door.refuse(401, f"jwt_{exc.reason}", f"ACS token rejected: {exc}") from None
    door.has_room()
    ids = CallIds(
        correlation_id=checked_id(request.headers.get("x-ms-call-correlation-id")),
        call_connection_id=checked_id(request.headers.get("x-ms-call-connection-id")),
        caller=checked_id(
            request.query.get("caller")
        ),  # as the control plane may show it (masked by default)
        server_call_id=checked_server_call_id(request.query.get("server_call_id")),
    )
    ws = await door.accept()
    control = host.control
    await door.run_call(
        ids,
        request.query.get("profile"),
        lambda call: AcsLeg(ws=ws, ids=ids, settings=host.settings, control=control, handler=call),
        voice=request.query.get("voice"),
    )
    return ws
