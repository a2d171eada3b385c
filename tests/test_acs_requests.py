"""The one way to Call Automation, as the media plane uses it (CallControl), against the stand-in.

The control plane's use of the same helper is covered through its functions (tests/functions).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from common.acs_requests import AcsError, acs_host, acs_request
from common.call_automation import call_automation_client
from common.telemetry import CallIds, Telemetry
from emulators.acs.call_automation import CallAutomationStandIn, CallState
from media_host.call_control import CallControl

IDS = CallIds(correlation_id="corr-1", call_connection_id="conn-1")


@pytest.fixture
async def control(acs: CallAutomationStandIn) -> AsyncIterator[CallControl]:
    client = call_automation_client(connection_string=acs.connection_string, endpoint=None, credential=None)
    control = CallControl(client, Telemetry(plane="media"), target=acs_host(None, acs.connection_string))
    yield control
    await control.close()


@pytest.fixture
def dependencies(caplog: pytest.LogCaptureFixture) -> Iterator[list[dict[str, Any]]]:
    """The dependencies recorded (written locally as JSON lines of the `audit` logger), as they come."""
    caplog.set_level(logging.DEBUG, logger="audit")
    records: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            line = json.loads(record.getMessage())
            if "dependency" in line:
                records.append(line)

    handler = Collect()
    logging.getLogger("audit").addHandler(handler)
    yield records
    logging.getLogger("audit").removeHandler(handler)


def connected(acs: CallAutomationStandIn) -> None:
    acs.calls[IDS.call_connection_id] = CallState(
        call_connection_id=IDS.call_connection_id,
        server_call_id="server-1",
        correlation_id=IDS.correlation_id,
        state="connected",
        callback_uri="https://functions.example/api/callbacks",
    )


async def test_hanging_up_an_ended_call_is_no_failure(
    acs: CallAutomationStandIn, control: CallControl, dependencies: list[dict[str, Any]]
) -> None:
    connected(acs)
    assert await control.hang_up(IDS) is True
    assert await control.hang_up(IDS) is False  # ACS answers 404: the call had already ended
    host = acs_host(None, acs.connection_string)  # the resource's host: the dependency's target
    assert host.startswith("127.0.0.1:")
    assert [(d["dependency"], d["target"], d["result"], d["success"]) for d in dependencies] == [
        ("ACS hang_up", host, "200", True),
        ("ACS hang_up", host, "404", False),
    ]
    assert all(d["call_connection_id"] == "conn-1" for d in dependencies)


async def test_a_refused_transfer_is_one_typed_error_with_numbers_masked(
    acs: CallAutomationStandIn, control: CallControl, dependencies: list[dict[str, Any]]
) -> None:
    connected(acs)
    acs.fail_next("transfer", 403, "cannot transfer to +819012345678", code="Forbidden")
    with pytest.raises(AcsError) as failed:
        await control.transfer(IDS, "+819012345678", operation_context="transfer_to_agent")
    assert (failed.value.status, failed.value.transient) == (403, False)
    assert str(failed.value) == "HTTP 403 (Forbidden): cannot transfer to +81******5678"
    assert dependencies[-1]["result"] == "403"


async def test_a_transfer_reaches_acs_with_the_target_as_its_identifier(
    acs: CallAutomationStandIn, control: CallControl
) -> None:
    connected(acs)
    await control.transfer(IDS, "+819012345678", operation_context="transfer_to_agent")
    target = (await acs.wait_for("transfer")).body["targetParticipant"]
    assert target == {"rawId": "4:+819012345678", "phoneNumber": {"value": "+819012345678"}}
    assert acs.calls["conn-1"].transfer_target == {"kind": "phoneNumber", **target}


async def test_silence_and_absence_are_transient(dependencies: list[dict[str, Any]]) -> None:
    telemetry = Telemetry(plane="media")
    with pytest.raises(AcsError, match=r"^no answer from ACS within 0\.05s$") as slow:
        await acs_request(
            asyncio.sleep(1), operation="answer_call", telemetry=telemetry, timeout=0.05, target="acs.example"
        )
    assert (slow.value.status, slow.value.transient) == (None, True)

    client = call_automation_client(
        connection_string="endpoint=http://127.0.0.1:9/;accesskey=a2V5", endpoint=None, credential=None
    )
    async with client:
        with pytest.raises(AcsError, match=r"^ACS unreachable \(ServiceRequestError") as gone:
            await acs_request(
                client.get_call_connection("c").hang_up(is_for_everyone=True),
                operation="hang_up",
                telemetry=telemetry,
                timeout=10,
                target="127.0.0.1:9",
            )
    assert (gone.value.status, gone.value.transient) == (None, True)
    assert [d["result"] for d in dependencies] == ["timeout", "unreachable"]


def test_the_acs_host_comes_from_the_endpoint_or_the_connection_string_never_the_key() -> None:
    assert acs_host("https://contoso.communication.azure.com/", None) == "contoso.communication.azure.com"
    connection = "endpoint=https://contoso.japan.communication.azure.com/;accesskey=c2VjcmV0"
    assert acs_host(None, connection) == "contoso.japan.communication.azure.com"
