"""The telemetry module with the real opencensus-ext-azure exporter, against an ingestion endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.settings_reader import SettingsError, SettingsReader
from common.telemetry import CallIds, Telemetry, TelemetrySettings, checked_id, checked_server_call_id
from emulators.app_insights import IngestionEndpoint

CALLER = "+819012345678"


async def test_every_record_type_carries_the_call_and_its_operation_id(ingestion: IngestionEndpoint) -> None:
    telemetry = Telemetry(plane="media", connection_string=ingestion.connection_string, export_interval=0.1)
    ids = CallIds("5c1e2f0a-1111-2222-3333-444455556666", "conn-1", "server-1", telemetry.show_number(CALLER))
    telemetry.attach_logs("tests.telemetry")
    logger = logging.getLogger("tests.telemetry")
    try:
        with telemetry.operation("GET /ws/media") as request:
            telemetry.event("CallAnswered", ids, measurements={"answer_ms": 12.5}, profile="restaurant")
            telemetry.metric("turn_latency_ms", 42.0, ids)
            telemetry.dependency(
                "ACS hang_up",
                target="contoso.communication.azure.com",
                kind="HTTP",
                duration_s=3.0,
                success=False,
                result_code="404",
                ids=ids,
            )
            logger.warning("hang-up failed", extra=ids.dims())
            try:
                raise ValueError("bad tool arguments")
            except ValueError:
                logger.exception("tool failed", extra=ids.dims())
            sent = datetime.now(UTC)
        telemetry.request(request, url="/ws/media", status=101, ids=ids)
        await ingestion.wait_until(lambda received: len(received.envelopes) >= 6)
    finally:
        await asyncio.to_thread(telemetry.close)

    kinds = sorted(e["data"]["baseType"] for e in ingestion.envelopes)
    assert kinds == [
        "EventData",
        "ExceptionData",
        "MessageData",
        "MetricData",
        "RemoteDependencyData",
        "RequestData",
    ]
    for envelope in ingestion.envelopes:
        assert envelope["tags"]["ai.operation.id"] == ids.correlation_id  # one query joins the call
        assert envelope["tags"]["ai.operation.name"] == "GET /ws/media"  # the Performance and Failures blades
        assert envelope["tags"]["ai.cloud.role"] == "media"
        # the replica and the process: a replica's workers each send their own
        assert envelope["tags"]["ai.cloud.roleInstance"] == f"{socket.gethostname()}:{os.getpid()}"
        assert envelope["iKey"] == ingestion.instrumentation_key
        properties = envelope["data"]["baseData"]["properties"]
        assert properties["caller"] == "+81******5678"
        assert (properties["call_connection_id"], properties["server_call_id"], properties["plane"]) == (
            "conn-1",
            "server-1",
            "media",
        )
    (request_envelope,) = ingestion.of_type("RequestData")
    assert request_envelope["tags"]["ai.operation.parentId"] == ids.correlation_id  # the root of the call
    assert request_envelope["data"]["baseData"]["id"] == request.id
    children = [e for e in ingestion.envelopes if e is not request_envelope]
    assert {e["tags"]["ai.operation.parentId"] for e in children} == {request.id}  # nested under it
    # a request and a dependency are stamped with their start
    assert request_envelope["time"] == request.started_at.isoformat().replace("+00:00", "Z")
    (dependency_envelope,) = ingestion.of_type("RemoteDependencyData")
    started = datetime.fromisoformat(dependency_envelope["time"].replace("Z", "+00:00"))
    assert timedelta(seconds=2.9) < sent - started < timedelta(seconds=3.5)
    event = ingestion.events("CallAnswered")[0]["data"]["baseData"]
    assert event["measurements"] == {"answer_ms": 12.5} and event["properties"]["profile"] == "restaurant"
    dependency = dependency_envelope["data"]["baseData"]
    assert (dependency["resultCode"], dependency["success"], dependency["target"]) == (
        "404", False, "contoso.communication.azure.com"
    )  # fmt: skip
    exception = ingestion.of_type("ExceptionData")[0]["data"]["baseData"]
    (details,) = exception["exceptions"]
    assert (details["typeName"], details["message"]) == ("ValueError", "tool failed: bad tool arguments")
    assert (
        details["parsedStack"][0]["method"] == "test_every_record_type_carries_the_call_and_its_operation_id"
    )
    assert exception["severityLevel"] == 3
    assert CALLER not in "".join(ingestion.bodies)


async def test_records_the_exporter_lost_are_counted_and_reported_once_records_get_through(
    ingestion: IngestionEndpoint,
) -> None:
    telemetry = Telemetry(
        plane="media", connection_string=ingestion.connection_string, export_interval=0.05, queue_capacity=10
    )
    ids = CallIds("corr-flood")
    try:
        for _ in range(2000):  # far faster than a queue of 10 drains
            telemetry.metric("turn_latency_ms", 1.0, ids)

        def drained(received: IngestionEndpoint) -> bool:
            return (
                len(received.envelopes) > 0 and telemetry._sink is not None and telemetry._sink.delivering()
            )

        await ingestion.wait_until(drained)
        await asyncio.sleep(0.3)
        telemetry.metric(
            "turn_latency_ms", 1.0, ids
        )  # the next record once export works: the count rides along
        await ingestion.wait_until(
            lambda received: any(_metric_name(e) == "telemetry_dropped" for e in received.envelopes)
        )
        await asyncio.sleep(0.3)
    finally:
        await asyncio.to_thread(telemetry.close)

    names = [_metric_name(e) for e in ingestion.envelopes]
    dropped = sum(e["data"]["baseData"]["metrics"][0]["value"] for e in ingestion.envelopes
                  if _metric_name(e) == "telemetry_dropped")  # fmt: skip
    assert dropped > 0
    assert names.count("turn_latency_ms") + dropped == 2001  # nothing lost without saying so


def _metric_name(envelope: dict[str, Any]) -> str:
    return str(envelope["data"]["baseData"].get("metrics", [{}])[0].get("name", ""))


def test_records_of_a_call_are_counted_for_its_end_record() -> None:
    telemetry = Telemetry(plane="media")
    ids = CallIds("corr-1")
    telemetry.event("MediaConnected", ids)
    telemetry.metric("first_assistant_audio_ms", 30.0, ids)
    telemetry.metric("active_calls", 1)  # not the call's
    assert telemetry.records_of(ids) == 3  # the two, and the CallEnded about to carry the count
    assert telemetry.records_of(ids) == 1  # forgotten once told


def test_numbers_are_masked_unless_the_audit_setting_says_otherwise() -> None:
    assert Telemetry(plane="functions").show_number(CALLER) == "+81******5678"
    assert Telemetry(plane="functions", unmasked_numbers=True).show_number(CALLER) == CALLER


def test_without_a_connection_string_events_are_structured_logs(caplog: pytest.LogCaptureFixture) -> None:
    telemetry = Telemetry(plane="functions")
    with caplog.at_level(logging.INFO, logger="audit"):
        telemetry.event("IncomingCallRejected", CallIds("corr-1", caller="+81******5678"), reason="deny list")
        telemetry.metric("time_to_answer_ms", 85.0, CallIds("corr-1"))
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "audit"]
    assert records[0] == {"event": "IncomingCallRejected", "plane": "functions", "correlation_id": "corr-1",
                          "caller": "+81******5678", "reason": "deny list"}  # fmt: skip
    assert records[1]["metric"] == "time_to_answer_ms" and records[1]["value"] == 85.0


def test_transcripts_are_off_by_default(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="audit"):
        Telemetry(plane="media").transcript(CallIds("c"), "caller", "my card number is 4111")
        Telemetry(plane="media", transcripts=True).transcript(CallIds("c"), "caller", "a table for two")
    texts = [r.getMessage() for r in caplog.records if r.name == "audit"]
    assert len(texts) == 1 and "a table for two" in texts[0] and "4111" not in caplog.text


async def test_a_dead_ingestion_endpoint_never_blocks_the_caller(ingestion: IngestionEndpoint) -> None:
    telemetry = Telemetry(plane="media", connection_string=ingestion.connection_string, export_interval=0.1)
    await ingestion.close()  # nothing listens any more: every export fails
    try:
        ids = CallIds("corr")

        def emit_many() -> None:
            for _ in range(20_000):  # more than the exporter's queue holds: the excess is dropped
                telemetry.metric("turn_latency_ms", 1.0, ids)

        await asyncio.wait_for(asyncio.to_thread(emit_many), timeout=10)  # a blocking put would hang here
        assert telemetry._sink is not None
        await asyncio.sleep(0.5)  # the exporter tries, fails, and counts what it could not deliver
        assert not telemetry._sink.delivering() and telemetry._sink.take_dropped() > 20_000 - 8192
    finally:
        await asyncio.to_thread(telemetry.close)


def test_settings_are_validated() -> None:
    r = SettingsReader({"APPLICATIONINSIGHTS_CONNECTION_STRING": "Endpoint=x", "AUDIT_TRANSCRIPTS": "maybe",
                        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=abc"})  # fmt: skip
    settings = TelemetrySettings.read(r)
    with pytest.raises(SettingsError) as caught:
        r.check("telemetry")
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING has no InstrumentationKey=" in str(caught.value)
    assert "AUDIT_TRANSCRIPTS='maybe' must be true or false" in str(caught.value)
    assert (settings.use_aad, settings.aad_client_id) == (True, "abc")


def test_ids_from_outside_are_recorded_only_if_they_look_like_ids() -> None:
    assert checked_id("+81******5678") == "+81******5678"
    assert checked_id("8:acs:0b5e1d7c_5c1e2f0a-1111") == "8:acs:0b5e1d7c_5c1e2f0a-1111"
    for bad in ("<script>", "a\nb", "x" * 129, "", None):
        assert checked_id(bad) == ""
    server_call_id = "aHR0cHM6Ly9zdGFuZC1pbi5pbnZhbGlkL2NvbnYvYWJj" * 4 + "=="  # base64 of a URL, ~180 chars
    assert checked_server_call_id(server_call_id) == server_call_id
    assert checked_server_call_id("not base64!") == "" and checked_id(server_call_id) == ""
