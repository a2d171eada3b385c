"""Application Insights for both planes, behind one small interface: swap the exporter here only.

Every record of a call (audit event, metric, trace, exception, request, dependency) carries the same
dimensions and uses the ACS correlation id as its operation id, so one KQL query follows a call
across the control and media planes. What is recorded while an incoming request is handled
(`operation`) is its child (`operation_ParentId`, `operation_Name`), so the portal's transaction
view nests a call's dependencies under the request that made them; requests and dependencies are
stamped with their start. Records are built as Application Insights envelopes with
opencensus-ext-azure's protocol classes and handed to its exporter, which batches and sends them
from its own thread: `emit` never blocks and a failing ingestion endpoint costs a call nothing.
What is lost (a full queue, a failed export) is counted and reported as the `telemetry_dropped`
metric once records get through again. Without a connection string the same events are written as
one-line JSON logs (logger `audit`), so nothing is lost locally either.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from common.log_safety import bounded
from common.phone import mask_phone
from common.settings_reader import SettingsReader

log = logging.getLogger("audit")

# SDK self-diagnostics ("statsbeat") would post to Microsoft's endpoints on its own; a call path
# has no business reaching anything but the configured ingestion endpoint.
os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")

from opencensus.ext.azure.common.processor import ProcessorMixin  # noqa: E402
from opencensus.ext.azure.common.protocol import (  # noqa: E402 - after the statsbeat switch
    Data,
    DataPoint,
    Envelope,
    Event,
    ExceptionData,
    Message,
    MetricData,
    RemoteDependency,
    Request,
)
from opencensus.ext.azure.common.transport import TransportMixin, TransportStatusCode  # noqa: E402
from opencensus.ext.azure.log_exporter import BaseLogHandler  # noqa: E402

REPLICA = socket.gethostname()  # the machine or container, which may run several worker processes
CALL_DIMENSIONS = ("correlation_id", "call_connection_id", "server_call_id", "caller")
MAX_PROPERTY_CHARS = 8192  # what Application Insights keeps of a property


TELEMETRY_SETTINGS = (
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AUDIT_UNMASKED_NUMBERS",
    "AUDIT_TRANSCRIPTS",
    "TELEMETRY_EXPORT_INTERVAL_SECONDS",
)


@dataclass(frozen=True)
class TelemetrySettings:
    connection_string: str | None
    use_aad: bool  # APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD[;ClientId=...]
    aad_client_id: str | None
    unmasked_numbers: bool
    transcripts: bool
    export_interval: float

    @classmethod
    def read(cls, r: SettingsReader) -> TelemetrySettings:
        connection_string = r.optional("APPLICATIONINSIGHTS_CONNECTION_STRING")
        if connection_string is not None and "instrumentationkey=" not in connection_string.lower():
            r.problems.append("APPLICATIONINSIGHTS_CONNECTION_STRING has no InstrumentationKey=")
            connection_string = None
        auth = dict(
            p.split("=", 1)
            for p in (r.optional("APPLICATIONINSIGHTS_AUTHENTICATION_STRING") or "").split(";")
            if "=" in p
        )
        return cls(
            connection_string=connection_string,
            use_aad=auth.get("Authorization", "").upper() == "AAD",
            aad_client_id=auth.get("ClientId") or r.optional("AZURE_CLIENT_ID"),
            unmasked_numbers=r.flag("AUDIT_UNMASKED_NUMBERS"),
            transcripts=r.flag("AUDIT_TRANSCRIPTS"),
            export_interval=r.number("TELEMETRY_EXPORT_INTERVAL_SECONDS", 5.0, low=0.1, high=300),
        )


@dataclass(frozen=True)
class CallIds:
    """Who a record is about. `caller` is already as it may be shown (see Telemetry.show_number)."""

    correlation_id: str = ""
    call_connection_id: str = ""
    server_call_id: str = ""
    caller: str = ""

    def dims(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in CALL_DIMENSIONS if getattr(self, name)}


@dataclass(frozen=True)
class Operation:
    """An incoming request being handled: the parent of every record made meanwhile."""

    name: str  # e.g. "POST incoming-call", "GET /ws/media": the transaction's operation_Name
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)


_OPERATION: ContextVar[Operation | None] = ContextVar("telemetry_operation", default=None)


def current_operation() -> Operation | None:
    """The incoming request being handled here, if any."""
    return _OPERATION.get()


_ID = re.compile(r"[A-Za-z0-9._:+*@-]{1,128}")  # GUID-like ids, ACS users (8:acs:<id>_<id>), +81******5678
_SERVER_CALL_ID = re.compile(r"[A-Za-z0-9+/=_-]{1,512}")  # base64 of a conversation URL, ~200 characters


def checked_id(value: str | None, pattern: re.Pattern[str] = _ID) -> str:
    """An id from outside (a header, a URL) as a call's records may carry it, or "" if it is not one:
    these values end up in every log line and telemetry record of the call."""
    return value if value is not None and pattern.fullmatch(value) else ""


def checked_server_call_id(value: str | None) -> str:
    return checked_id(value, _SERVER_CALL_ID)


class Telemetry:
    def __init__(
        self,
        *,
        plane: str,
        connection_string: str | None = None,
        aad_client_id: str | None = None,
        use_aad: bool = False,
        unmasked_numbers: bool = False,
        transcripts: bool = False,
        export_interval: float = 5.0,
        queue_capacity: int = 8192,
    ) -> None:
        self.plane = plane
        self._records: Counter[str] = Counter()  # by correlation id: what CallEnded says it closes
        # Made in the process that sends (a worker, after the fork): each worker has its own exporter
        # and its own calls, so Application Insights tells them apart.
        self.role_instance = f"{REPLICA}:{os.getpid()}"
        self.unmasked_numbers = unmasked_numbers
        self.transcripts = transcripts
        self._sink: _Exporter | None = None
        self._attached: list[tuple[logging.Logger, logging.Handler, int]] = []
        if connection_string:
            credential = None
            if use_aad:  # App Insights with local auth disabled takes Entra tokens only
                from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - only in Azure

                credential = ManagedIdentityCredential(client_id=aad_client_id)
            self._sink = _Exporter(
                connection_string=connection_string,
                credential=credential,
                enable_local_storage=False,  # no disk spool: a dead endpoint drops, it never backs up
                export_interval=export_interval,
                max_batch_size=100,
                queue_capacity=queue_capacity,
                timeout=5.0,
            )

    @classmethod
    def from_settings(cls, settings: TelemetrySettings, *, plane: str) -> Telemetry:
        return cls(
            plane=plane,
            connection_string=settings.connection_string,
            use_aad=settings.use_aad,
            aad_client_id=settings.aad_client_id,
            unmasked_numbers=settings.unmasked_numbers,
            transcripts=settings.transcripts,
            export_interval=settings.export_interval,
        )

    @property
    def exporting(self) -> bool:
        return self._sink is not None

    def show_number(self, number: str | None) -> str:
        """A phone number as records may carry it: masked unless AUDIT_UNMASKED_NUMBERS=true."""
        if not number:
            return ""
        return number if self.unmasked_numbers else mask_phone(number)

    # -- what a request's records hang from --------------------------------------------------
    @contextlib.contextmanager
    def operation(self, name: str) -> Iterator[Operation]:
        """While an incoming request is handled (and in the tasks it starts): its records are its
        children. Close it with `request(..., operation=)`."""
        op = Operation(name)
        token = _OPERATION.set(op)
        try:
            yield op
        finally:
            _OPERATION.reset(token)

    def records_of(self, ids: CallIds) -> int:
        """Records of this call made by this process so far, then forgotten: CallEnded says how many
        there were (itself included), so an auditor can tell a trail is complete."""
        return self._records.pop(ids.correlation_id, 0) + 1

    # -- the record types -----------------------------------------------------------------------
    def event(
        self,
        name: str,
        ids: CallIds | None = None,
        *,
        measurements: Mapping[str, float] | None = None,
        **props: Any,
    ) -> None:
        """One named audit event with its reason codes (customEvents)."""
        properties = self._properties(ids, props)
        self._count(ids)
        if self._sink is None:
            log.info(json.dumps({"event": name, **properties, **(measurements or {})}, default=str))
            return
        data = Event(name=name, properties=properties, measurements=dict(measurements or {}))
        self._send(data, "EventData", ids)

    def metric(self, name: str, value: float, ids: CallIds | None = None, **props: Any) -> None:
        """One measured value (customMetrics), kept per call so percentiles can be computed."""
        properties = self._properties(ids, props)
        self._count(ids)
        if self._sink is None:
            log.info(json.dumps({"metric": name, "value": value, **properties}, default=str))
            return
        data = MetricData(
            metrics=[DataPoint(ns=self.plane, name=name, value=float(value))], properties=properties
        )
        self._send(data, "MetricData", ids)

    def transcript(self, ids: CallIds, role: str, text: str) -> None:
        """Each turn's text as its own event; off unless AUDIT_TRANSCRIPTS=true."""
        if self.transcripts:
            self.event("Turn", ids, role=role, text=text)

    def request(
        self, operation: Operation, *, url: str, status: int, ids: CallIds | None = None, **props: Any
    ) -> None:
        """The incoming HTTP request `operation` was, now that it is answered (requests): stamped with
        its start, lasting until now."""
        self._count(ids)
        if self._sink is None:
            return  # the server's own access log covers it locally
        data = Request(
            id=operation.id,
            name=operation.name,
            url=url,
            responseCode=str(status),
            success=status < 400,
            duration=_duration(time.monotonic() - operation.started),
            properties=self._properties(ids, props),
        )
        self._send(data, "RequestData", ids, at=operation.started_at, request=operation)

    def dependency(
        self,
        name: str,
        *,
        target: str,
        kind: str,
        duration_s: float,
        success: bool,
        result_code: str = "",
        ids: CallIds | None = None,
        **props: Any,
    ) -> None:
        """An outgoing call that took `duration_s` until now: to ACS, or the model socket (dependencies)."""
        self._count(ids)
        if self._sink is None:
            level = logging.DEBUG if success else logging.WARNING
            log.log(level, json.dumps({"dependency": name, "target": target, "ms": round(duration_s * 1000),
                                       "success": success, "result": result_code, **self._properties(ids, props)}))  # fmt: skip
            return
        data = RemoteDependency(
            id=uuid.uuid4().hex[:16],
            name=name,
            target=target,
            type=kind,
            resultCode=result_code,
            success=success,
            duration=_duration(duration_s),
            properties=self._properties(ids, props),
        )
        self._send(data, "RemoteDependencyData", ids, at=datetime.now(UTC) - timedelta(seconds=duration_s))

    def trace(self, record: logging.LogRecord) -> None:
        """A log line (traces), or an error with its exception (exceptions), with the call's dimensions
        taken from the record's `extra`."""
        if self._sink is None:
            return
        ids = CallIds(**{name: str(getattr(record, name, "") or "") for name in CALL_DIMENSIONS})
        self._count(ids)
        severity = max(0, record.levelno - 1) // 10
        properties = self._properties(ids, {"logger": record.name})
        if record.exc_info and record.exc_info[1] is not None:
            self._send(_exception(record, severity, properties), "ExceptionData", ids)
        else:
            message = Message(message=record.getMessage(), severityLevel=severity, properties=properties)
            self._send(message, "MessageData", ids)

    def attach_logs(self, *logger_names: str) -> None:
        """Send these loggers' records (INFO and up) as traces."""
        if self._sink is None:
            return
        handler = _TraceHandler(self)
        for name in logger_names:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            self._attached.append((logger, handler, logger.level))
            # what is exported must not depend on how verbose the console is
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (bounded by `timeout`) and stop. Blocking: call it off the event loop."""
        for logger, handler, level in self._attached:
            logger.removeHandler(handler)
            logger.setLevel(level)
        self._attached.clear()
        if self._sink is not None:
            self._sink.close(timeout=timeout)
            self._sink = None

    # -- plumbing -------------------------------------------------------------------------------
    def _properties(self, ids: CallIds | None, props: Mapping[str, Any]) -> dict[str, str]:
        properties = {"plane": self.plane, **(ids.dims() if ids else {})}
        properties.update(
            {
                k: bounded(v if isinstance(v, str) else json.dumps(v, default=str), MAX_PROPERTY_CHARS)
                for k, v in props.items()
            }
        )
        return properties

    def _count(self, ids: CallIds | None) -> None:
        if ids is not None and ids.correlation_id:
            self._records[ids.correlation_id] += 1

    def _send(
        self,
        base_data: Any,
        base_type: str,
        ids: CallIds | None,
        *,
        at: datetime | None = None,
        request: Operation | None = None,  # this is that request's own record: the root of its call
    ) -> None:
        sink = self._sink
        assert sink is not None
        trace_id = (ids.correlation_id if ids else "") or uuid.uuid4().hex
        operation = request or _OPERATION.get()
        parent = operation.id if operation is not None and request is None else trace_id
        tags = {
            "ai.cloud.role": self.plane,
            "ai.cloud.roleInstance": self.role_instance,
            "ai.operation.id": trace_id,
            "ai.operation.parentId": parent,
        }
        if operation is not None:
            tags["ai.operation.name"] = operation.name
        sink.put(_envelope(sink, base_data, base_type, at or datetime.now(UTC), tags))
        # once records get through again, say how many were lost meanwhile
        if sink.delivering() and (dropped := sink.take_dropped()):
            self._report_dropped(sink, dropped, tags)

    def _report_dropped(self, sink: _Exporter, dropped: int, tags: dict[str, str]) -> None:
        metric = MetricData(
            metrics=[DataPoint(ns=self.plane, name="telemetry_dropped", value=float(dropped))],
            properties={"plane": self.plane},
        )
        own = uuid.uuid4().hex  # not a call's: an operation of its own
        own_tags = {**tags, "ai.operation.id": own, "ai.operation.parentId": own}
        own_tags.pop("ai.operation.name", None)
        sink.put(_envelope(sink, metric, "MetricData", datetime.now(UTC), own_tags))


def _envelope(
    sink: _Exporter, base_data: Any, base_type: str, at: datetime, tags: dict[str, str]
) -> Envelope:
    return Envelope(
        iKey=sink.options.instrumentation_key,
        name=f"Microsoft.ApplicationInsights.{base_type.removesuffix('Data')}",
        time=at.isoformat().replace("+00:00", "Z"),
        tags=tags,
        data=Data(baseData=base_data, baseType=base_type),
    )


def _exception(record: logging.LogRecord, severity: int, properties: dict[str, str]) -> ExceptionData:
    assert record.exc_info is not None
    exc_type, exc, tb = record.exc_info
    stack = [
        {"level": level, "method": frame.name, "fileName": frame.filename, "line": frame.lineno}
        for level, frame in enumerate(reversed(traceback.extract_tb(tb)))
    ]
    return ExceptionData(
        exceptions=[{
            "id": 1,
            "outerId": 0,
            "typeName": exc_type.__name__ if exc_type else "Exception",
            "message": bounded(f"{record.getMessage()}: {exc}", MAX_PROPERTY_CHARS),
            "hasFullStack": bool(stack),
            "parsedStack": stack,
        }],
        severityLevel=severity,
        properties=properties,
    )  # fmt: skip


class _Exporter(TransportMixin, ProcessorMixin, BaseLogHandler):  # type: ignore[misc]
    """opencensus-ext-azure's queue, worker thread and transport, fed ready-made envelopes; it counts
    what it loses (a full queue, an export that failed: there is no disk spool to retry from)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._lost = 0
        self._lost_lock = threading.Lock()
        self._delivered = True  # the last export's outcome (set by the exporter's thread)

    def put(self, envelope: Envelope) -> None:
        record = logging.LogRecord("telemetry", logging.INFO, "", 0, "", None, None)
        record.envelope = envelope
        try:
            self._queue._queue.put(record, block=False)  # never waited on
        except queue.Full:
            self._add_lost(1)

    def delivering(self) -> bool:
        """The last export got through and the queue has room."""
        return self._delivered and not self._queue._queue.full()

    def take_dropped(self) -> int:
        with self._lost_lock:
            lost, self._lost = self._lost, 0
        return lost

    def _add_lost(self, count: int) -> None:
        with self._lost_lock:
            self._lost += count

    def _transmit(self, envelopes: list[Envelope]) -> Any:
        result = super()._transmit(envelopes)
        self._delivered = result == TransportStatusCode.SUCCESS
        if not self._delivered:
            self._add_lost(len(envelopes))
        return result

    def log_record_to_envelope(self, record: logging.LogRecord) -> Envelope:
        return record.envelope  # type: ignore[attr-defined]


class _TraceHandler(logging.Handler):
    def __init__(self, telemetry: Telemetry) -> None:
        super().__init__(logging.INFO)
        self.telemetry = telemetry

    def emit(self, record: logging.LogRecord) -> None:
        self.telemetry.trace(record)


def _duration(seconds: float) -> str:
    """Application Insights' d.hh:mm:ss.fff."""
    ms = max(0, round(seconds * 1000))
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return f"{d}.{h:02d}:{m:02d}:{s:02d}.{ms:03d}"
