"""The whole stack on 127.0.0.1: ACS emulator, dev gateway (Functions + media host), offline engine."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from local_stack.stack import LocalStack

# Settings a developer's shell might carry that would point the stack somewhere else.
FOREIGN = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_COMMUNICATION_CONNECTION_STRING", "ACS_ENDPOINT",
           "ACS_RESOURCE_ID", "CALLBACK_URI_HOST", "MEDIA_HOST_URL", "AOAI_INSTRUCTIONS", "AOAI_INSTRUCTIONS_FILE")  # fmt: skip


@contextlib.asynccontextmanager
async def local_stack(**settings: str) -> AsyncIterator[LocalStack]:
    """The stack on this machine with `settings` on top; the process environment is restored after."""
    saved = dict(os.environ)
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    local = LocalStack()
    await local.start({**env, **settings})
    try:
        yield local
    finally:
        await local.close()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with local_stack() as local:
        yield local
