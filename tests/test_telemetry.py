"""The telemetry module with the real opencensus-ext-azure exporter, against an ingestion endpoint on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket

import pytest

from common.settings_reader import SettingsError, SettingsReader
from common.telemetry import CallIds, Telemetry, TelemetrySettings
from emulators.app_insights import IngestionEndpoint

CALLER = "+819012345678"


async def test_every_record_type_carries_the_call_and_its_operation_id(ingestion: IngestionEndpoint) -> None:
    telemetry = Telemetry(plane="media", connection_string=ingestion.connection_string, export_interval=0.1)
    ids = CallIds("5c1e2f0a-1111-2222-3333-444455556666", "conn-1", "server-1", telemetry.show_number(CALLER))
    telemetry.attach_logs("tests.telemetry")
    try:
        telemetry.event("CallAnswered", ids, measurements={"answer_ms": 12.5}, profile="restaurant")
        telemetry.metric("turn_latency_ms", 42.0, ids)
        telemetry.request("GET /ws/media", url="/ws/media", status=101, duration_s=61.5, ids=ids)
        telemetry.dependency(
            "ACS hang_up",
            target="acs",
            kind="HTTP",
            duration_s=0.03,
            success=False,
            result_code="404",
            ids=ids,
        )
        logging.getLogger("tests.telemetry").warning("hang-up failed", extra=ids.dims())
        await ingestion.wait_until(lambda received: len(received.envelopes) >= 5)
    finally:
        await asyncio.to_thread(telemetry.close)

    kinds = sorted(e["data"]["baseType"] for e in ingestion.envelopes)
    assert kinds == ["EventData", "MessageData", "MetricData", "RemoteDependencyData", "RequestData"]
    for envelope in ingestion.envelopes:
        assert envelope["tags"]["ai.operation.id"] == ids.correlation_id  # one query joins the call
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
    event = ingestion.events("CallAnswered")[0]["data"]["baseData"]
    assert event["measurements"] == {"answer_ms": 12.5} and event["properties"]["profile"] == "restaurant"
    request = ingestion.of_type("RequestData")[0]["data"]["baseData"]
    assert (request["duration"], request["responseCode"], request["success"]) == (
        "0.00:01:01.500",
        "101",
        True,
    )
    dependency = ingestion.of_type("RemoteDependencyData")[0]["data"]["baseData"]
    assert (dependency["resultCode"], dependency["success"]) == ("404", False)
    assert CALLER not in "".join(ingestion.bodies)


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
