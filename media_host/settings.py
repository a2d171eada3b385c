"""Media host settings: read and validated once, at start-up.

Every problem is collected and reported together, each naming the variable, so a misconfigured
deployment fails with one readable message instead of one error per restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.acs_jwt import ACS_ISSUER, ACS_OPENID_CONFIG_URL

SOXR_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ACS_USER = re.compile(r"^8:acs:[0-9a-fA-F-]{36}_[0-9A-Za-z_-]+$")

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise voice assistant answering a phone call. Speak naturally, keep answers "
    "short (one or two sentences), and ask one question at a time. Greet the caller when the call starts. "
    "When the caller says goodbye or their request is complete, say a brief goodbye and then call end_call."
)


class SettingsError(ValueError):
    """One or more settings are missing or malformed; the message names each of them."""


@dataclass(frozen=True)
class AcsSettings:
    resource_id: str  # JWT audience: the ACS resource's immutable id
    jwt_issuer: str
    openid_config_url: str
    endpoint: str | None  # managed identity path
    connection_string: str | None  # local development path


@dataclass(frozen=True)
class ModelSettings:
    endpoint: str  # as configured; realtime_url() derives the socket URL
    deployment: str
    api_key: str | None
    voice: str
    instructions: str
    transcription_model: str
    vad_threshold: float
    vad_silence_ms: int
    vad_prefix_ms: int
    connect_attempts: int
    connect_backoff_seconds: float

    def realtime_url(self) -> str:
        """GA endpoint: wss://<resource>/openai/v1/realtime?model=<deployment> (no api-version)."""
        parts = urlsplit(self.endpoint)
        scheme = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}[parts.scheme]
        return f"{scheme}://{parts.netloc}/openai/v1/realtime?model={self.deployment}"


@dataclass(frozen=True)
class MediaSettings:
    port: int
    acs: AcsSettings
    model: ModelSettings
    soxr_quality: str
    transfer_target: str | None
    max_concurrent_calls: int
    max_call_seconds: float
    drain_seconds: float
    playback_lead_ms: int
    max_frame_bytes: int
    max_buffered_seconds: float  # caller audio held while the model socket (re)connects
    tool_timeout_seconds: float
    extra_tools: str | None  # "package.module:factory" returning more tools
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaSettings:
        r = _Reader(env)
        acs = AcsSettings(
            resource_id=r.required("ACS_RESOURCE_ID"),
            jwt_issuer=r.url("ACS_JWT_ISSUER", ACS_ISSUER, schemes=("https", "http")),
            openid_config_url=r.url(
                "ACS_OPENID_CONFIG_URL", ACS_OPENID_CONFIG_URL, schemes=("https", "http")
            ),
            endpoint=r.optional_url("ACS_ENDPOINT", schemes=("https", "http")),
            connection_string=r.connection_string("AZURE_COMMUNICATION_CONNECTION_STRING"),
        )
        if not (acs.endpoint or acs.connection_string):
            r.problems.append(
                "ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING is required "
                "to hang up and transfer calls"
            )
        model = ModelSettings(
            endpoint=r.required_url("AZURE_OPENAI_ENDPOINT", schemes=("https", "wss", "http", "ws")),
            deployment=r.text("AZURE_OPENAI_DEPLOYMENT", "gpt-realtime"),
            api_key=r.optional("AZURE_OPENAI_API_KEY"),
            voice=r.choice("AOAI_VOICE", "sage", VOICES),
            instructions=r.instructions(),
            transcription_model=r.text("AOAI_TRANSCRIPTION_MODEL", "whisper-1"),
            vad_threshold=r.number("AOAI_VAD_THRESHOLD", 0.5, low=0.0, high=1.0),
            vad_silence_ms=int(r.number("AOAI_VAD_SILENCE_MS", 500, low=100, high=5000)),
            vad_prefix_ms=int(r.number("AOAI_VAD_PREFIX_MS", 300, low=0, high=2000)),
            connect_attempts=int(r.number("MODEL_CONNECT_ATTEMPTS", 4, low=1, high=20)),
            connect_backoff_seconds=r.number("MODEL_CONNECT_BACKOFF_SECONDS", 0.5, low=0.0, high=30.0),
        )
        settings = cls(
            port=int(r.number("PORT", 8000, low=1, high=65535)),
            acs=acs,
            model=model,
            soxr_quality=r.choice("MEDIA_WS_SOXR_QUALITY", "HQ", SOXR_QUALITIES, upper=True),
            transfer_target=r.transfer_target("TRANSFER_TARGET"),
            max_concurrent_calls=int(r.number("MAX_CONCURRENT_CALLS", 50, low=1, high=10_000)),
            max_call_seconds=r.number("MAX_CALL_SECONDS", 1800, low=1, high=86_400),
            drain_seconds=r.number("MEDIA_DRAIN_SECONDS", 120, low=0, high=3600),
            playback_lead_ms=int(r.number("MEDIA_PLAYBACK_LEAD_MS", 60, low=20, high=1000)),
            max_frame_bytes=int(r.number("MEDIA_MAX_FRAME_BYTES", 65_536, low=4096, high=4_194_304)),
            max_buffered_seconds=r.number("MEDIA_MAX_BUFFERED_SECONDS", 10, low=0.5, high=120),
            tool_timeout_seconds=r.number("TOOL_TIMEOUT_SECONDS", 20, low=0.5, high=600),
            extra_tools=r.optional("MEDIA_EXTRA_TOOLS"),
            log_level=r.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        )
        if r.problems:
            raise SettingsError("Invalid media host settings:\n  - " + "\n  - ".join(r.problems))
        return settings


class _Reader:
    """Reads typed values and collects a problem per bad variable instead of raising at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def optional(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            self.problems.append(f"{name} is required but not set")
            return ""
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append(f"{name}={raw!r} is not a number")
            return default
        if not low <= value <= high:
            self.problems.append(f"{name}={raw} is out of range [{low:g}, {high:g}]")
            return default
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            self.problems.append(f"{name}={raw!r} must be one of {', '.join(allowed)}")
            return default
        return value

    def optional_url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        parts = urlsplit(raw)
        if parts.scheme not in schemes or not parts.netloc:
            self.problems.append(
                f"{name}={raw!r} must be a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
            return None
        return raw.rstrip("/")

    def url(self, name: str, default: str, *, schemes: tuple[str, ...]) -> str:
        return self.optional_url(name, schemes=schemes) or default

    def required_url(self, name: str, *, schemes: tuple[str, ...]) -> str:
        if self.optional(name) is None:
            self.problems.append(f"{name} is required but not set")
            return "ws://invalid"
        return self.optional_url(name, schemes=schemes) or "ws://invalid"

    def connection_string(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            parse_connection_string(raw)
        except ValueError as exc:
            self.problems.append(f"{name} is malformed: {exc}")
            return None
        return raw

    def transfer_target(self, name: str) -> str | None:
        raw = self.optional(name)
        if raw is not None and not (E164.match(raw) or ACS_USER.match(raw)):
            self.problems.append(
                f"{name}={raw!r} must be an E.164 number (+14255550100) or an ACS user id (8:acs:...)"
            )
            return None
        return raw

    def instructions(self) -> str:
        path = self.optional("AOAI_INSTRUCTIONS_FILE")
        if path is not None:
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.problems.append(f"AOAI_INSTRUCTIONS_FILE={path!r} cannot be read: {exc.strerror}")
                return DEFAULT_INSTRUCTIONS
            if not text:
                self.problems.append(f"AOAI_INSTRUCTIONS_FILE={path!r} is empty")
            return text or DEFAULT_INSTRUCTIONS
        return self.text("AOAI_INSTRUCTIONS", DEFAULT_INSTRUCTIONS)


def parse_connection_string(value: str) -> tuple[str, str]:
    """`endpoint=https://x.communication.azure.com/;accesskey=<base64>` -> (endpoint, key).

    The message of the ValueError never contains the key.
    """
    fields: dict[str, str] = {}
    for part in value.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            fields[k.strip().lower()] = v.strip()
    endpoint, key = fields.get("endpoint"), fields.get("accesskey")
    if not endpoint or not key:
        raise ValueError("expected 'endpoint=https://<resource>.communication.azure.com/;accesskey=<key>'")
    if urlsplit(endpoint).scheme not in ("https", "http"):
        raise ValueError("its endpoint must start with https://")
    return endpoint, key
