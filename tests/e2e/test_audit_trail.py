"""What an auditor sees in Application Insights for one emulated call, from both planes."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator
from typing import Any

import pytest

from emulators.acs.emulator import EmulatedCall
from emulators.app_insights import IngestionEndpoint
from emulators.caller import converse, script
from local_stack.records import CallRecord
from local_stack.stack import LocalStack
from tests.e2e.conftest import local_stack

LINES = {line.file: line for line in script()}
CALLER = "+14255550123"


@pytest.fixture
async def stack(ingestion: IngestionEndpoint) -> AsyncIterator[LocalStack]:
    settings = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        "TELEMETRY_EXPORT_INTERVAL_SECONDS": "0.2",
    }
    async with local_stack(**settings) as local:
        yield local


async def call_to_the_end(
    stack: LocalStack, lines: tuple[str, ...], *, on_media: Any = None
) -> tuple[EmulatedCall, CallRecord]:
    call = await stack.emulator.incoming_call(stack.incoming_call_url, caller=CALLER)
    async with asyncio.timeout(10):
        await call.media_ready.wait()
        while (record := stack.record(call.call_connection_id or "")) is None:
            await asyncio.sleep(0.02)
    assert call.leg is not None
    if on_media is not None:
        await on_media()
    await converse(call.leg, tuple(LINES[name] for name in lines))
    async with asyncio.timeout(30):
        await call.ended.wait()
    return call, record


def of_call(ingestion: IngestionEndpoint, correlation_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in ingestion.envelopes
        if e["data"]["baseData"].get("properties", {}).get("correlation_id") == correlation_id
    ]


def event_names(envelopes: list[dict[str, Any]]) -> list[str]:
    events = sorted((e for e in envelopes if e["data"]["baseType"] == "EventData"), key=lambda e: e["time"])
    return [e["data"]["baseData"]["name"] for e in events]


async def test_one_call_end_to_end_under_one_operation_id(
    stack: LocalStack, ingestion: IngestionEndpoint
) -> None:
    call, _ = await call_to_the_end(stack, ("06_goodbye.wav",))
    corr = call.correlation_id

    def complete(received: IngestionEndpoint) -> bool:
        names = event_names(of_call(received, corr))
        return "CallEnded" in names and names.count("CallbackReceived") >= 3

    await ingestion.wait_until(complete)
    await asyncio.sleep(0.5)  # the last batches (requests, metrics) of both planes

    envelopes = of_call(ingestion, corr)
    names = event_names(envelopes)
    expected = [
        "IncomingCallReceived",
        "CallAnswered",
        "MediaConnected",
        "ModelSessionStarted",
        "ToolCalled",
        "CallEnded",
    ]
    assert [n for n in names if n in expected] == expected  # the audit trail, in order
    callbacks = [
        e["data"]["baseData"]["properties"]["type"]
        for e in envelopes
        if e["data"]["baseData"].get("name") == "CallbackReceived"
    ]
    assert {"CallConnected", "MediaStreamingStarted", "CallDisconnected"} <= set(callbacks)
    ended = next(e["data"]["baseData"] for e in envelopes if e["data"]["baseData"].get("name") == "CallEnded")
    assert (ended["properties"]["who"], ended["properties"]["why"]) == ("assistant", "assistant_ended")
    assert ended["measurements"]["duration_s"] > 1

    assert {e["tags"]["ai.operation.id"] for e in envelopes} == {corr}  # one query joins both planes
    assert {e["tags"]["ai.cloud.role"] for e in envelopes} == {"functions", "media"}
    metrics = {
        e["data"]["baseData"]["metrics"][0]["name"]
        for e in envelopes
        if e["data"]["baseType"] == "MetricData"
    }
    assert {
        "time_to_answer_ms",
        "first_assistant_audio_ms",
        "turn_latency_ms",
        "outbound_underruns",
    } <= metrics
    requests = {e["data"]["baseData"]["name"] for e in envelopes if e["data"]["baseType"] == "RequestData"}
    assert {"POST incoming-call", "POST callbacks", "GET /ws/media"} <= requests
    dependencies = {
        e["data"]["baseData"]["name"] for e in envelopes if e["data"]["baseType"] == "RemoteDependencyData"
    }
    assert {"ACS answer_call", "model socket", "ACS hang_up"} <= dependencies
    assert any(e["data"]["baseType"] == "MessageData" for e in envelopes)  # the log lines of the call too

    everything = "".join(ingestion.bodies)
    assert all(
        e["data"]["baseData"]["properties"]["caller"] == "+14*****0123"
        for e in envelopes
        if "caller" in e["data"]["baseData"].get("properties", {})
    )
    for secret in (
        CALLER,
        stack.number,
        stack.function_key,
        stack.emulator.rest.access_key,
        "eyJ",
        "Bearer",
        "offline-engine",
    ):
        assert secret not in everything, f"{secret[:12]}... must never reach telemetry"
    assert "Turn" not in names and "Contoso" not in everything  # transcripts are off by default
    _every_record_is_complete_and_nested(stack, envelopes, corr)


def _every_record_is_complete_and_nested(
    stack: LocalStack, envelopes: list[dict[str, Any]], corr: str
) -> None:
    """Every record carries every dimension known for the call when it was made, hangs from the request
    that made it, and a request is stamped with its start; CallEnded says how many records it closes."""
    before_answer = {"IncomingCallReceived", "ACS answer_call"}  # ACS had not yet named the connection
    for envelope in envelopes:
        base = envelope["data"]["baseData"]
        dims = {d for d in ("correlation_id", "call_connection_id", "server_call_id", "caller")
                if base["properties"].get(d)}  # fmt: skip
        expected = {"correlation_id", "server_call_id", "caller"}
        assert expected <= dims, (base.get("name") or base.get("message"), dims)
        if base.get("name") not in before_answer:
            assert "call_connection_id" in dims, base.get("name") or base.get("message")
    requests = {e["data"]["baseData"]["id"]: e for e in envelopes if e["data"]["baseType"] == "RequestData"}
    for request in requests.values():
        assert request["tags"]["ai.operation.parentId"] == corr  # the roots of the call's transaction
        assert request["tags"]["ai.operation.name"] == request["data"]["baseData"]["name"]
    for envelope in envelopes:
        if envelope["data"]["baseType"] == "RequestData":
            continue
        parent = requests[envelope["tags"]["ai.operation.parentId"]]  # a child of one of the call's requests
        assert envelope["tags"]["ai.operation.name"] == parent["data"]["baseData"]["name"]
        assert envelope["time"] >= parent["time"]  # the request is stamped with its start
    acs_host = stack.emulator.rest.endpoint.split("://", 1)[1].rstrip("/")
    assert {e["data"]["baseData"]["target"] for e in envelopes
            if e["data"]["baseData"].get("name", "").startswith("ACS ")} == {acs_host}  # fmt: skip
    media = [e for e in envelopes if e["tags"]["ai.cloud.role"] == "media"]
    ended = next(e["data"]["baseData"] for e in media if e["data"]["baseData"].get("name") == "CallEnded")
    closed = [e for e in media if e["data"]["baseType"] != "RequestData"]  # the GET /ws/media record follows
    assert int(ended["properties"]["records"]) == len(closed)  # an auditor can tell the trail is complete


async def test_a_dead_ingestion_endpoint_costs_the_call_nothing(
    stack: LocalStack, ingestion: IngestionEndpoint
) -> None:
    lines = ("04_opening_hours.wav", "06_goodbye.wav")
    alive_call, alive = await call_to_the_end(stack, lines)
    dead_call, dead = await call_to_the_end(stack, lines, on_media=ingestion.close)  # killed mid-call

    for call in (alive_call, dead_call):
        assert call.end_reason == "hung_up_by_app" and call.callback_types()[-1] == "CallDisconnected"
    assert len(alive.turn_latency_ms) == len(dead.turn_latency_ms) == 2
    baseline, without = (
        statistics.median(alive.turn_latency_ms),
        statistics.median(dead.turn_latency_ms),
    )
    assert abs(without - baseline) < 100, (alive.turn_latency_ms, dead.turn_latency_ms)
    assert dead.first_audio_ms is not None and alive.first_audio_ms is not None
    assert abs(dead.first_audio_ms - alive.first_audio_ms) < 100
