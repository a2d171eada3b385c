"""POST /api/twilio/stream-status: the media stream's statusCallback (twilio-openai.md §1.3).

Twilio posts `stream-started`, `stream-stopped` and `stream-error` (with its message in StreamError)
for each call's stream, signed like any webhook. Each becomes a `TwilioStreamStatus` audit event of
the call (the CallSid is its correlation id), so the trail shows Twilio's side of the media path even
when the stream never reached the media host. 204: Twilio reads nothing back.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import azure.functions as func

from common.phone import mask_phone_numbers
from common.telemetry import CallIds

from .http import CURRENT_CALL, blueprint, traced
from .runtime import runtime
from .twilio_webhook import METHODS, PROVIDER, STREAM_STATUS_ROUTE, TwilioForm, verified

log = logging.getLogger(__name__)

bp = blueprint()

NEEDS = ("CALLBACK_URI_HOST",)
MAX_ERROR_CHARS = 1024
# The three documented events, and any Twilio adds later: recorded, not refused.
_EVENT = re.compile(r"stream-[a-z-]{1,32}")


@dataclass(frozen=True)
class StreamStatus:
    call_sid: str
    stream_sid: str
    event: str
    error: str  # Twilio's message; empty unless the stream failed


@bp.function_name("twilio_stream_status")
@bp.route(route=STREAM_STATUS_ROUTE, methods=METHODS, auth_level=func.AuthLevel.ANONYMOUS)
@traced("twilio-stream-status")
async def twilio_stream_status(req: func.HttpRequest) -> func.HttpResponse:
    rt = runtime()
    checked = verified(rt, req, STREAM_STATUS_ROUTE, NEEDS, _read_status)
    if isinstance(checked, func.HttpResponse):
        return checked
    _, status = checked
    ids = CallIds(correlation_id=status.call_sid)
    CURRENT_CALL.set(ids)
    rt.telemetry.event(
        "TwilioStreamStatus",
        ids,
        provider=PROVIDER,
        stream_event=status.event,  # not `event`: the local audit line names the record by it
        error=status.error,
        stream_sid=status.stream_sid,
    )
    failed = status.event == "stream-error" or bool(status.error)
    log.log(
        logging.WARNING if failed else logging.INFO,
        "Twilio media stream %s of call %s: %s%s",
        status.stream_sid,
        status.call_sid,
        status.event,
        f" ({status.error})" if status.error else "",
        extra=ids.dims(),
    )
    return func.HttpResponse(status_code=204)


def _read_status(form: TwilioForm) -> StreamStatus:
    return StreamStatus(
        call_sid=form.sid("CallSid", "CA"),
        stream_sid=form.sid("StreamSid", "MZ"),
        event=form.required(
            "StreamEvent", _EVENT, "a stream event (stream-started, stream-stopped or stream-error)"
        ),
        error=mask_phone_numbers(form.one("StreamError", max_chars=MAX_ERROR_CHARS) or ""),
    )
