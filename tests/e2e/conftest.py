"""The whole stack on 127.0.0.1: a phone network's emulator, dev gateway (Functions + media host),
offline engine."""

from __future__ import annotations

import contextlib
import json
import os
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from local_stack import demo
from local_stack.stack import LocalStack, Provider

# A developer's shell may hold real settings: a test must never reach Azure, api.openai.com or
# api.twilio.com with them, nor point the stack somewhere else.
FOREIGN = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_COMMUNICATION_CONNECTION_STRING", "ACS_ENDPOINT",
           "ACS_RESOURCE_ID", "CALLBACK_URI_HOST", "MEDIA_HOST_URL", "AOAI_INSTRUCTIONS", "AOAI_INSTRUCTIONS_FILE",
           "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_REALTIME_MODEL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
           "TWILIO_API_BASE_URL", "TWILIO_MODEL_AUDIO")  # fmt: skip
SPEECH = 500  # |sample| above this is sound in a recording, not silence


@dataclass(frozen=True)
class DemoCall:
    """What `make demo` left in its out directory: the summary, the turns and the stereo recording."""

    summary: dict[str, Any]
    turns: list[dict[str, Any]]
    rate: int
    stereo: npt.NDArray[np.int16]  # caller left, assistant right (as the caller heard it)

    def said(self, role: str) -> str:
        return " ".join(t["text"] for t in self.turns if t["role"] == role).lower()

    def sound_seconds(self, channel: int) -> float:
        return float((np.abs(self.stereo[:, channel].astype(np.int32)) > SPEECH).sum()) / self.rate

    def first_sound_at(self, channel: int) -> float:
        """Seconds into the recording of the channel's first sound."""
        return float(np.argmax(np.abs(self.stereo[:, channel].astype(np.int32)) > SPEECH)) / self.rate


def run_demo(out_dir: Path, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> DemoCall:
    """`make demo PROVIDER=<provider>` itself, in a clean environment: it must exit 0."""
    for name in FOREIGN:
        monkeypatch.delenv(name, raising=False)
    saved = dict(os.environ)
    try:
        assert demo.main(out_dir, provider) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    (transcript_file,) = out_dir.glob("call-*.json")
    transcript = json.loads(transcript_file.read_text())
    (recording,) = out_dir.glob("call-*.wav")
    with wave.open(str(recording)) as w:
        assert w.getnchannels() == 2
        stereo = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        return DemoCall(transcript["summary"], transcript["turns"], w.getframerate(), stereo)


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
