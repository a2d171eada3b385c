"""ACS on one machine: what the service does around the Call Automation REST requests.

- It announces an incoming call to the Event Grid subscription the way Event Grid does: the
  validation handshake first, then a real-shaped `Microsoft.Communication.IncomingCall` event.
- When a call is answered (or the callee of an outbound call picks up) it sends JWT-signed
  CloudEvents callbacks (`CallConnected`, `MediaStreamingStarted`) and dials the transport URL
  with a media leg like ACS; when that URL cannot be reached it sends `MediaStreamingFailed`.
- On hang-up or transfer the leg closes and `CallDisconnected` (after `CallTransferAccepted`) is sent.

Tokens come from its own RSA key; its OpenID configuration and JWKS are served, so the product's
verifier checks them unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from common.identifiers import from_raw_id, parse_target

from .call_automation import CallAutomationStandIn, CallState, IncomingCall, RecordedRequest
from .media_leg import MediaLeg
from .tokens import AcsTokenIssuer

log = logging.getLogger(__name__)

AUDIO_RATES = {"pcm24KMono": 24_000, "pcm16KMono": 16_000}
DEFAULT_AUDIO_FORMAT = "pcm16KMono"  # the service's default when the app does not ask
MEDIA_UNREACHABLE = {
    "code": 500,
    "subCode": 8581,
    "message": "Media streaming failed: the transport URL could not be reached.",
}
SUBSCRIPTION = "local-incoming-call"


def identifier(who: str) -> dict[str, Any]:
    """The wire model of a party: an E.164 number, or any raw id (`4:+1...`, `8:acs:...`, `4:anonymous`)."""
    return (parse_target(who) if who.startswith("+") else from_raw_id(who)).wire()


class EventGridHandshakeFailed(RuntimeError):
    """The webhook did not complete Event Grid's validation handshake, so nothing is delivered."""


@dataclass
class Callback:
    type: str
    status: int  # what the callback URL answered (0: unreachable)
    at: float


@dataclass
class EmulatedCall:
    direction: str  # "inbound" | "outbound"
    caller: dict[str, Any]
    callee: dict[str, Any]
    correlation_id: str
    server_call_id: str
    incoming_call_context: str | None = None
    event: dict[str, Any] | None = None  # the IncomingCall as delivered, kept for redelivery
    call_connection_id: str | None = None
    leg: MediaLeg | None = None
    callbacks: list[Callback] = field(default_factory=list)
    announced_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None
    end_reason: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    media_ready: asyncio.Event = field(default_factory=asyncio.Event)  # the leg is up, or it failed
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    delivery_status: int | None = None  # what the webhook answered the IncomingCall (inbound calls)

    def callback_types(self) -> list[str]:
        return [c.type for c in self.callbacks]


class AcsEmulator:
    def __init__(self, *, resource_id: str | None = None, ring_seconds: float = 0.5) -> None:
        self.resource_id = resource_id or str(uuid.uuid4())
        self.tokens = AcsTokenIssuer()
        self.rest = CallAutomationStandIn(resource_id=self.resource_id)
        self.ring_seconds = ring_seconds
        self.calls: list[EmulatedCall] = []
        # Told of each outbound call as it starts ringing (a local softphone whose user it calls).
        self.dial_observers: list[Callable[[EmulatedCall], None]] = []
        self._outbound = asyncio.Queue[EmulatedCall]()
        self._validated: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.tokens.serve()
        await self.rest.serve()
        self.rest.observers.append(self._on_operation)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        for call in self.calls:
            if call.leg is not None:
                await call.leg.close()
            if not call.ended.is_set():  # whoever follows a call learns it is over
                call.end_reason = call.end_reason or "emulator_closed"
                call.ended.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        await self.rest.close()
        await self.tokens.close()

    def settings_env(self) -> dict[str, str]:
        """The settings that point the product at this emulator instead of ACS."""
        return {
            "ACS_RESOURCE_ID": self.resource_id,
            "ACS_JWT_ISSUER": self.tokens.issuer,
            "ACS_OPENID_CONFIG_URL": self.tokens.openid_config_url,
            "AZURE_COMMUNICATION_CONNECTION_STRING": self.rest.connection_string,
        }

    # -- Event Grid -----------------------------------------------------------------------------
    async def subscribe(self, webhook_url: str) -> None:
        """The subscription's validation handshake (Event Grid schema), as on subscription create."""
        code = str(uuid.uuid4())
        event = self._event_grid_event(
            "Microsoft.EventGrid.SubscriptionValidationEvent",
            "",
            {"validationCode": code, "validationUrl": "https://rp-local.eventgrid.invalid/validate"},
        )
        status, body = await self._post_event_grid(webhook_url, [event], "SubscriptionValidation")
        answered = body.get("validationResponse") if isinstance(body, dict) else None
        if status != 200 or answered != code:
            raise EventGridHandshakeFailed(
                f"{webhook_url} answered the validation handshake with HTTP {status} and {body!r}; "
                f'Event Grid needs 200 and {{"validationResponse": "{code}"}}'
            )
        self._validated.add(webhook_url)

    async def incoming_call(
        self,
        webhook_url: str,
        *,
        caller: str = "+14255550123",
        callee: str = "+18005550100",
        display_name: str = "",
        custom_context: dict[str, Any] | None = None,
    ) -> EmulatedCall:
        """Ring: deliver an IncomingCall to the subscription (handshaking first if it is new).

        `custom_context` is the caller's `{"sipHeaders": {...}, "voipHeaders": {...}}`, sent as is.
        """
        if webhook_url not in self._validated:
            await self.subscribe(webhook_url)
        call = EmulatedCall(
            direction="inbound",
            caller=identifier(caller),
            callee=identifier(callee),
            correlation_id=str(uuid.uuid4()),
            server_call_id=base64_id(),
            incoming_call_context=secrets.token_urlsafe(96),
        )
        self.calls.append(call)
        assert call.incoming_call_context is not None
        self.rest.incoming[call.incoming_call_context] = IncomingCall(
            call.incoming_call_context, call.correlation_id, call.server_call_id, call.caller, call.callee
        )
        call.event = self._incoming_call_event(call, display_name, custom_context)
        call.delivery_status = await self.redeliver(call, webhook_url, delivery_count=0)
        return call

    async def redeliver(self, call: EmulatedCall, webhook_url: str, *, delivery_count: int = 1) -> int:
        """Event Grid delivers at least once: the same event again, as after a timeout."""
        assert call.event is not None, "only announced incoming calls can be redelivered"
        status, body = await self._post_event_grid(
            webhook_url, [call.event], "Notification", delivery_count=delivery_count
        )
        if status >= 300:
            log.warning("IncomingCall delivery answered HTTP %d: %s", status, body)
        return status

    def _incoming_call_event(
        self, call: EmulatedCall, display_name: str, custom_context: dict[str, Any] | None
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "to": call.callee,
            "from": call.caller,
            "serverCallId": call.server_call_id,
            "callerDisplayName": display_name,
            "incomingCallContext": call.incoming_call_context,
            "correlationId": call.correlation_id,
        }
        if custom_context is not None:
            data["customContext"] = custom_context
        return self._event_grid_event(
            "Microsoft.Communication.IncomingCall",
            f"/caller/{call.caller['rawId']}/recipient/{call.callee['rawId']}",
            data,
        )

    def _event_grid_event(self, event_type: str, subject: str, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-local/providers/"
            "Microsoft.Communication/communicationServices/acs-local",
            "subject": subject,
            "eventType": event_type,
            "data": data,
            "eventTime": now_iso(),
            "metadataVersion": "1",
            "dataVersion": "1.0" if event_type.startswith("Microsoft.Communication") else "1",
        }

    async def _post_event_grid(
        self, url: str, events: list[dict[str, Any]], event_type: str, *, delivery_count: int = 0
    ) -> tuple[int, Any]:
        assert self._http is not None
        headers = {
            "aeg-event-type": event_type,
            "aeg-subscription-name": SUBSCRIPTION.upper(),
            "aeg-delivery-count": str(delivery_count),
            "aeg-data-version": events[0]["dataVersion"],
            "aeg-metadata-version": "1",
        }
        try:
            async with self._http.post(url, json=events, headers=headers) as response:
                text = await response.text()
                try:
                    return response.status, await response.json(content_type=None)
                except ValueError:
                    return response.status, text
        except aiohttp.ClientError as exc:
            raise EventGridHandshakeFailed(f"{url} is unreachable: {exc}") from exc

    async def next_outbound_call(self, timeout: float = 10.0) -> EmulatedCall:
        async with asyncio.timeout(timeout):
            return await self._outbound.get()

    # -- reacting to Call Automation requests ---------------------------------------------------
    def _on_operation(self, rec: RecordedRequest, state: CallState | None) -> None:
        if state is None:
            if rec.operation == "reject":
                self._settle_rejected(rec)
            return
        handlers = {
            "answer": self._answered,
            "create": self._dialled,
            "terminate": lambda s: self._ended(s, "hung_up_by_app"),
            "hangup_leg": lambda s: self._ended(s, "hung_up_by_app"),
            "transfer": self._transferred,
        }
        handler = handlers.get(rec.operation)
        if handler is not None:
            task = asyncio.create_task(handler(state))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _settle_rejected(self, rec: RecordedRequest) -> None:
        context = rec.body.get("incomingCallContext") if isinstance(rec.body, dict) else None
        for call in self.calls:
            if call.incoming_call_context == context:
                call.end_reason = f"rejected:{rec.body.get('callRejectReason', 'none')}"
                call.ended.set()

    def _find(self, state: CallState) -> EmulatedCall | None:
        return next((c for c in self.calls if c.call_connection_id == state.call_connection_id), None)

    async def _answered(self, state: CallState) -> None:
        call = next((c for c in self.calls if c.incoming_call_context == state.incoming_call_context), None)
        if call is None:  # answered with a context we never announced: ACS would refuse; keep it visible
            log.warning("answer for an unknown incoming call context")
            return
        call.call_connection_id = state.call_connection_id
        if call.ended.is_set():  # the caller gave up while it rang: the answered call ends at once
            state.state = "disconnected"
            await self._callback(call, state, "CallDisconnected")
            return
        await self._connect(call, state)

    async def _dialled(self, state: CallState) -> None:
        call = EmulatedCall(
            direction="outbound",
            caller=state.source or identifier(self.rest.bot_user_id),
            callee=state.targets[0],
            correlation_id=state.correlation_id,
            server_call_id=state.server_call_id,
            call_connection_id=state.call_connection_id,
        )
        self.calls.append(call)
        for observer in self.dial_observers:
            observer(call)
        self._outbound.put_nowait(call)
        await asyncio.sleep(self.ring_seconds)  # ringing, then the callee picks up
        if call.ended.is_set():  # hung up while it rang
            return
        state.state = "connected"
        await self._connect(call, state)

    async def _connect(self, call: EmulatedCall, state: CallState) -> None:
        call.answered_at = time.monotonic()
        call.connected.set()
        await self._callback(call, state, "CallConnected")
        options = state.media_streaming_options
        if not options or not options.get("startMediaStreaming"):
            call.media_ready.set()
            return
        leg = MediaLeg(
            sample_rate=AUDIO_RATES[options.get("audioFormat") or DEFAULT_AUDIO_FORMAT],
            call_connection_id=state.call_connection_id,
            dtmf_enabled=bool(options.get("enableDtmfTones")),
            correlation_id=state.correlation_id,
        )
        token = self.tokens.sign(
            audience=self.resource_id, lifetime_seconds=24 * 3600
        )  # media tokens live 24 h
        try:
            await leg.connect(options["transportUrl"], token)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("media transport %s unreachable: %s", options["transportUrl"], exc)
            update = {"contentType": "audio", "mediaStreamingStatus": "mediaStreamingFailed",
                      "mediaStreamingStatusDetails": "initialWebSocketConnectionFailed"}  # fmt: skip
            await self._callback(
                call, state, "MediaStreamingFailed", MEDIA_UNREACHABLE, mediaStreamingUpdate=update
            )
            call.media_ready.set()
            return
        leg.start_stream()
        call.leg = leg
        call.media_ready.set()
        update = {"contentType": "audio", "mediaStreamingStatus": "mediaStreamingStarted",
                  "mediaStreamingStatusDetails": "subscriptionStarted"}  # fmt: skip
        await self._callback(call, state, "MediaStreamingStarted", mediaStreamingUpdate=update)

    async def _transferred(self, state: CallState) -> None:
        call = self._find(state)
        if call is None:
            return
        target = state.transfer_target
        await self._callback(
            call, state, "CallTransferAccepted", transferTarget=target, transferee=call.caller
        )
        await self._ended(state, "transferred")

    async def _ended(self, state: CallState, reason: str) -> None:
        call = self._find(state)
        if call is None or call.end_reason is not None:  # set before any await: two hang-ups, one end
            return
        call.end_reason = reason
        state.state = "disconnected"
        if call.leg is not None:
            await call.leg.close()
        await self._callback(call, state, "CallDisconnected")
        call.ended.set()

    async def caller_hangs_up(self, call: EmulatedCall) -> None:
        """The caller puts the phone down: a call not yet answered is abandoned (if the app answers it
        after all, it ends at once)."""
        state = self.rest.calls.get(call.call_connection_id or "")
        if state is not None:
            await self._ended(state, "caller_hung_up")
        elif call.end_reason is None:
            call.end_reason = "caller_abandoned"
            call.ended.set()

    async def _callback(
        self,
        call: EmulatedCall,
        state: CallState,
        event_type: str,
        result: dict[str, Any] | None = None,
        **data: Any,
    ) -> None:
        """POST one JWT-signed CloudEvent, in an array as ACS does, to the call's callback URL."""
        assert self._http is not None
        event = {
            "id": str(uuid.uuid4()),
            "source": f"calling/callConnections/{state.call_connection_id}",
            "type": f"Microsoft.Communication.{event_type}",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "time": now_iso(),
            "subject": f"calling/callConnections/{state.call_connection_id}",
            "data": {
                "callConnectionId": state.call_connection_id,
                "serverCallId": state.server_call_id,
                "correlationId": state.correlation_id,
                "operationContext": state.operation_context,
                "resultInformation": result or {"code": 200, "subCode": 0, "message": "Success."},
                **data,
            },
        }
        headers = {"Authorization": f"Bearer {self.tokens.sign(audience=self.resource_id)}"}
        status = 0
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._http.post(state.callback_uri, json=[event], headers=headers) as response:
                status = response.status
        if status != 200:
            log.warning("callback %s to %s answered %s", event_type, state.callback_uri, status or "nothing")
        call.callbacks.append(Callback(event_type, status, time.monotonic()))


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def base64_id() -> str:
    return secrets.token_urlsafe(48)
