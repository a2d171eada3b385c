"""Outcomes of Call Automation requests, sorted into "retrying may help" and "it will not".

azure-core already retried transient statuses inside the client (see common.call_automation.CLIENT_OPTIONS); what
reaches here is final for this invocation. The caller decides what that means for its own sender
(Event Grid retries on 503, an API client gets 502).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import aiohttp
from azure.core.exceptions import AzureError, HttpResponseError

from common.call_automation import ACS_TARGET
from common.phone import mask_phone_numbers
from common.telemetry import CallIds, Telemetry

T = TypeVar("T")

# 408 and 429 are the 4xx that do get better with time.
_TRANSIENT_4XX = frozenset({408, 429})


class AcsFailure(Exception):
    """A Call Automation request failed; ``str(exc)`` is safe to log (numbers masked)."""

    def __init__(self, message: str, *, status: int | None, transient: bool) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


async def acs_request(
    request: Awaitable[T], *, timeout: float, operation: str, telemetry: Telemetry, ids: CallIds | None = None
) -> T:
    """Await one SDK call, bounded in time, turning every failure into AcsFailure; record it as a dependency."""
    started = time.monotonic()
    code = "error"
    try:
        result = await _bounded(request, timeout)
        code = "200"
        return result
    except AcsFailure as exc:
        code = str(exc.status) if exc.status is not None else "unreachable"
        raise
    finally:
        telemetry.dependency(
            f"ACS {operation}", target=ACS_TARGET, kind="HTTP", duration_s=time.monotonic() - started,
            success=code == "200", result_code=code, ids=ids,
        )  # fmt: skip


async def _bounded(request: Awaitable[T], timeout: float) -> T:
    try:
        async with asyncio.timeout(timeout):
            return await request
    except HttpResponseError as exc:
        status = exc.status_code
        # No status: the credential could not get a token (managed identity hiccup): worth a retry.
        transient = status is None or status >= 500 or status in _TRANSIENT_4XX
        detail = exc.error.message if exc.error is not None and exc.error.message else exc.message
        code = f" ({exc.error.code})" if exc.error is not None and exc.error.code else ""
        label = f"HTTP {status}" if status is not None else type(exc).__name__
        raise AcsFailure(
            f"{label}{code}: {mask_phone_numbers(str(detail))}", status=status, transient=transient
        ) from None
    except TimeoutError:
        raise AcsFailure(f"no answer from ACS within {timeout:g}s", status=None, transient=True) from None
    except (AzureError, aiohttp.ClientError) as exc:
        raise AcsFailure(
            f"ACS unreachable ({type(exc).__name__}: {mask_phone_numbers(str(exc))})",
            status=None,
            transient=True,
        ) from None
