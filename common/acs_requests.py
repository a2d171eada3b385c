"""Every ACS request (Call Automation, Identity), from either plane, made one way.

Each is bounded in time, recorded as a telemetry dependency with its outcome, and fails only with
`AcsError`, sorted into "retrying may help" and "it will not". azure-core already retried transient
statuses inside the client (see common.call_automation.CLIENT_OPTIONS): what reaches here is final for
this request. The caller decides what that means for its own sender (Event Grid retries on 503, an
API client gets 502, a call in progress tries once more).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TypeVar
from urllib.parse import urlsplit

import aiohttp
from azure.communication.callautomation.aio import CallAutomationClient
from azure.core.exceptions import AzureError, HttpResponseError

from .errors import ProductError
from .phone import mask_phone_numbers
from .telemetry import CallIds, Telemetry

log = logging.getLogger(__name__)

T = TypeVar("T")

# 408 and 429 are the 4xx that do get better with time.
_TRANSIENT_4XX = frozenset({408, 429})


class AcsError(ProductError):
    """An ACS request failed; ``str(exc)`` is safe to log (numbers masked)."""

    def __init__(self, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status  # ACS's HTTP status; None when ACS gave no answer
        self.transient = transient


async def acs_request(
    request: Awaitable[T],
    *,
    operation: str,
    telemetry: Telemetry,
    timeout: float,
    target: str,  # the ACS resource's host (acs_host): the dependency's target
    ids: CallIds | None = None,
) -> T:
    """Await one SDK request, bounded in time, turning every failure into AcsError; record it as a dependency."""
    started = time.monotonic()
    code = "error"  # until known: a cancellation is no success either
    try:
        async with asyncio.timeout(timeout):
            result = await request
        code = "200"
        return result
    except TimeoutError:
        code = "timeout"
        raise AcsError(f"no answer from ACS within {timeout:g}s", status=None, transient=True) from None
    except (AzureError, aiohttp.ClientError) as exc:
        error = _failure(exc)
        code = str(error.status) if error.status is not None else "unreachable"
        raise error from None
    finally:
        telemetry.dependency(
            f"ACS {operation}", target=target, kind="HTTP", duration_s=time.monotonic() - started,
            success=code == "200", result_code=code, ids=ids,
        )  # fmt: skip


def acs_host(endpoint: str | None, connection_string: str | None) -> str:
    """The ACS resource's host, from its endpoint or connection string (never the key)."""
    if not endpoint and connection_string:
        parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
        endpoint = next((v for k, v in parts.items() if k.lower() == "endpoint"), None)
    return urlsplit(endpoint or "").netloc or "acs"


async def hang_up(
    client: CallAutomationClient, ids: CallIds, *, telemetry: Telemetry, timeout: float, target: str
) -> bool:
    """Hang the call up for everyone; False if it had already ended (ACS no longer knows it)."""
    connection = client.get_call_connection(ids.call_connection_id)
    try:
        await acs_request(
            connection.hang_up(is_for_everyone=True),
            operation="hang_up",
            telemetry=telemetry,
            timeout=timeout,
            target=target,
            ids=ids,
        )
    except AcsError as exc:
        if exc.status != 404:
            raise
        log.info("call %s had already ended", ids.call_connection_id, extra=ids.dims())
        return False
    return True


def _failure(exc: AzureError | aiohttp.ClientError) -> AcsError:
    if isinstance(exc, HttpResponseError):
        status = exc.status_code
        # No status: the credential could not get a token (managed identity hiccup): worth a retry.
        transient = status is None or status >= 500 or status in _TRANSIENT_4XX
        detail = exc.error.message if exc.error is not None and exc.error.message else exc.message
        code = f" ({exc.error.code})" if exc.error is not None and exc.error.code else ""
        label = f"HTTP {status}" if status is not None else type(exc).__name__
        return AcsError(
            f"{label}{code}: {mask_phone_numbers(str(detail))}", status=status, transient=transient
        )
    return AcsError(
        f"ACS unreachable ({type(exc).__name__}: {mask_phone_numbers(str(exc))})", status=None, transient=True
    )
