"""Media host settings: read and validated once, at start-up."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from common.acs_jwt import ACS_ISSUER, ACS_OPENID_CONFIG_URL
from common.profiles import DEFAULT_PROFILES_DIR, Profile, ProfileError, load_profiles, resolve_profiles_dir
from common.settings_reader import SettingsReader
from common.telemetry import TelemetrySettings
from common.twilio_auth import credential_problems
from common.twiml import stream_url
from common.voices import VOICES

SOXR_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
AUDIO_CHUNKS = ("20", "40", "60", "80", "100")  # whole 20 ms frames
MODEL_URL_SCHEMES = ("https", "wss", "http", "ws")  # http/ws: a local engine or a test's fake
OPENAI_BASE_URL = "wss://api.openai.com/v1"
# Both vendors' names are settings: gpt-realtime is announced for retirement on 2027-01-20.
DEFAULT_MODEL = "gpt-realtime"
# How long the service keeps one realtime session: Azure OpenAI 30 minutes, OpenAI 60 (its GA limit).
# A longer call is rolled over to a fresh session before then (media_host.model_session).
SESSION_LIMITS = {"azure": 1800.0, "openai": 3600.0}
TWILIO_API = "https://api.twilio.com"

DEFAULT_INSTRUCTIONS = (
    "You are a friendly, concise voice assistant answering a phone call. Speak naturally, keep answers "
    "short (one or two sentences), and ask one question at a time. Greet the caller when the call starts. "
    "When the caller says goodbye or their request is complete, say a brief goodbye and then call end_call."
)


@dataclass(frozen=True)
class AcsSettings:
    resource_id: str  # JWT audience: the ACS resource's immutable id
    jwt_issuer: str
    openid_config_url: str
    endpoint: str | None  # managed identity path
    connection_string: str | None  # local development path


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str  # signs webhooks and the stream upgrade; authenticates the REST API. Never logged
    api_base_url: str  # https://api.twilio.com (a stand-in's URL in tests)
    stream_url: str  # the public wss:// URL Twilio dials, as Twilio signs it: <MEDIA_HOST_URL>/ws/twilio
    model_audio: Literal["pcmu", "pcm24"]  # pcmu: the caller's μ-law straight to the model, no conversion


@dataclass(frozen=True)
class ModelSettings:
    vendor: Literal["azure", "openai"]
    endpoint: str  # Azure: the resource; OpenAI: the API base URL. realtime_url() derives the socket URL
    deployment: str  # what `?model=` names: the Azure deployment or the OpenAI model id
    api_key: str | None  # Azure: optional (Entra ID when absent); OpenAI: always set
    voice: str
    instructions: str
    transcription_model: str
    vad_threshold: float
    vad_silence_ms: int
    vad_prefix_ms: int
    connect_attempts: int
    connect_backoff_seconds: float
    connect_timeout_seconds: float
    session_max_seconds: float  # the service ends a realtime session this long after it opened

    def realtime_url(self) -> str:
        """GA endpoints, no api-version: Azure wss://<resource>/openai/v1/realtime?model=<deployment>,
        OpenAI <base URL>/realtime?model=<model>."""
        parts = urlsplit(self.endpoint)
        scheme = {"https": "wss", "wss": "wss", "http": "ws", "ws": "ws"}[parts.scheme]
        path = "/openai/v1" if self.vendor == "azure" else parts.path
        return f"{scheme}://{parts.netloc}{path}/realtime?model={self.deployment}"


@dataclass(frozen=True)
class MediaSettings:
    port: int
    acs: AcsSettings | None  # None: this host takes no ACS calls (/ws/media is not served)
    twilio: TwilioSettings | None  # None: no Twilio calls (/ws/twilio is not served)
    model: ModelSettings
    soxr_quality: str
    transfer_target: str | None
    workers: int  # processes behind the one port (media_host.workers); each takes max_concurrent_calls
    max_concurrent_calls: int
    max_call_seconds: float
    media_idle_seconds: float  # ACS silent this long (it sends a frame every 20 ms): the socket is half-open
    drain_seconds: float
    playback_lead_ms: int
    playback_chunk_ms: int  # assistant audio per message to the caller's leg
    model_append_ms: int  # caller audio per message to the model
    max_frame_bytes: int
    max_buffered_seconds: float  # caller audio held while the model socket (re)connects
    tool_timeout_seconds: float
    tool_filler_ms: int  # a tool still running this long: one short filler line per call (0: never)
    no_input_seconds: float  # caller silent this long after the assistant's playout: a reprompt (0: never)
    no_input_reprompts: int  # unanswered reprompts before the assistant says goodbye and hangs up
    dtmf_terminator: str  # the key that ends a keypad entry at once ("" : only the gap does)
    dtmf_gap_ms: int  # no key for this long: the keys pressed so far go to the model as one input
    max_call_warning_seconds: float  # a polite warning this long before MAX_CALL_SECONDS (0: none)
    profiles: Mapping[str, Profile]  # by name, chosen per call with ?profile=
    telemetry: TelemetrySettings
    extra_tools: str | None  # "package.module:factory" returning more tools
    log_level: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MediaSettings:
        r = SettingsReader(env)
        acs, twilio = _acs(r), _twilio(r)
        if acs is None and twilio is None:
            r.problems.append(
                "no telephony provider: set ACS_RESOURCE_ID (and ACS_ENDPOINT or "
                "AZURE_COMMUNICATION_CONNECTION_STRING) for ACS, or TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN "
                "for Twilio"
            )
        vendor, endpoint, deployment, api_key = _model_vendor(r)
        model = ModelSettings(
            vendor=vendor,
            endpoint=endpoint,
            deployment=deployment,
            api_key=api_key,
            voice=r.choice("AOAI_VOICE", "sage", VOICES),
            instructions=r.text_file("AOAI_INSTRUCTIONS_FILE")
            or r.text("AOAI_INSTRUCTIONS", DEFAULT_INSTRUCTIONS),
            transcription_model=r.text("AOAI_TRANSCRIPTION_MODEL", "whisper-1"),
            vad_threshold=r.number("AOAI_VAD_THRESHOLD", 0.5, low=0.0, high=1.0),
            vad_silence_ms=int(r.number("AOAI_VAD_SILENCE_MS", 500, low=100, high=5000)),
            vad_prefix_ms=int(r.number("AOAI_VAD_PREFIX_MS", 300, low=0, high=2000)),
            connect_attempts=int(r.number("MODEL_CONNECT_ATTEMPTS", 4, low=1, high=20)),
            connect_backoff_seconds=r.number("MODEL_CONNECT_BACKOFF_SECONDS", 0.5, low=0.0, high=30.0),
            connect_timeout_seconds=r.number("MODEL_CONNECT_TIMEOUT_SECONDS", 10, low=0.5, high=120),
            session_max_seconds=r.number(
                "MODEL_SESSION_MAX_SECONDS", SESSION_LIMITS[vendor], low=2, high=24 * 3600
            ),
        )
        settings = cls(
            port=int(r.number("PORT", 8000, low=1, high=65535)),
            acs=acs,
            twilio=twilio,
            model=model,
            soxr_quality=r.choice("MEDIA_WS_SOXR_QUALITY", "HQ", SOXR_QUALITIES, upper=True),
            transfer_target=r.call_target("TRANSFER_TARGET"),
            workers=r.integer("MEDIA_WORKERS", usable_cpus(), low=1, high=256),
            max_concurrent_calls=int(r.number("MAX_CONCURRENT_CALLS", 50, low=1, high=10_000)),
            max_call_seconds=r.number("MAX_CALL_SECONDS", 1800, low=1, high=86_400),
            media_idle_seconds=r.number("MEDIA_IDLE_SECONDS", 5, low=0.5, high=600),
            drain_seconds=r.number("MEDIA_DRAIN_SECONDS", 120, low=0, high=3600),
            playback_lead_ms=int(r.number("MEDIA_PLAYBACK_LEAD_MS", 60, low=20, high=1000)),
            playback_chunk_ms=int(r.choice("MEDIA_PLAYBACK_CHUNK_MS", "60", AUDIO_CHUNKS)),
            model_append_ms=int(r.choice("MEDIA_MODEL_APPEND_MS", "40", AUDIO_CHUNKS)),
            max_frame_bytes=int(r.number("MEDIA_MAX_FRAME_BYTES", 65_536, low=4096, high=4_194_304)),
            max_buffered_seconds=r.number("MEDIA_MAX_BUFFERED_SECONDS", 10, low=0.5, high=120),
            tool_timeout_seconds=r.number("TOOL_TIMEOUT_SECONDS", 20, low=0.5, high=600),
            tool_filler_ms=int(r.number("TOOL_FILLER_MS", 1200, low=0, high=60_000)),
            no_input_seconds=r.number("NO_INPUT_SECONDS", 8, low=0, high=600),
            no_input_reprompts=r.integer("NO_INPUT_REPROMPTS", 2, low=0, high=10),
            dtmf_terminator=r.choice("DTMF_TERMINATOR", "#", ("#", "*", "none")).replace("none", ""),
            dtmf_gap_ms=int(r.number("DTMF_GAP_MS", 2000, low=200, high=30_000)),
            max_call_warning_seconds=r.number("MAX_CALL_WARNING_SECONDS", 60, low=0, high=3600),
            profiles=_profiles(r),
            telemetry=TelemetrySettings.read(r),
            extra_tools=r.optional("MEDIA_EXTRA_TOOLS"),
            log_level=r.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True),
        )
        r.check("media host")
        return settings


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), or all of them where affinity is unknown (macOS).
    A container limited by a CPU quota rather than a cpuset sees all the node's: set MEDIA_WORKERS there."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _acs(r: SettingsReader) -> AcsSettings | None:
    if r.optional("ACS_RESOURCE_ID") is None and r.optional("TWILIO_ACCOUNT_SID") is not None:
        return None  # a Twilio-only host
    acs = AcsSettings(
        resource_id=r.guid("ACS_RESOURCE_ID"),
        jwt_issuer=r.url("ACS_JWT_ISSUER", ACS_ISSUER, schemes=("https", "http")),
        openid_config_url=r.url("ACS_OPENID_CONFIG_URL", ACS_OPENID_CONFIG_URL, schemes=("https", "http")),
        endpoint=r.optional_url("ACS_ENDPOINT", schemes=("https", "http")),
        connection_string=r.connection_string("AZURE_COMMUNICATION_CONNECTION_STRING"),
    )
    if not (acs.endpoint or acs.connection_string):
        r.problems.append(
            "ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING is required "
            "to hang up and transfer calls"
        )
    return acs


def _twilio(r: SettingsReader) -> TwilioSettings | None:
    """Seed A's names. The stream URL is signed by Twilio as it dialled it: never taken from a header."""
    if r.optional("TWILIO_ACCOUNT_SID") is None and r.optional("TWILIO_AUTH_TOKEN") is None:
        return None
    account_sid, auth_token = r.optional("TWILIO_ACCOUNT_SID"), r.optional("TWILIO_AUTH_TOKEN")
    r.problems += credential_problems(account_sid, auth_token).values()
    media_url = r.required_url("MEDIA_HOST_URL", schemes=("wss", "https", "ws", "http"))
    return TwilioSettings(
        account_sid=account_sid or "",
        auth_token=auth_token or "",
        api_base_url=r.url("TWILIO_API_BASE_URL", TWILIO_API, schemes=("https", "http")),
        stream_url=stream_url(media_url),
        model_audio="pcm24"
        if r.choice("TWILIO_MODEL_AUDIO", "pcmu", ("pcmu", "pcm24")) == "pcm24"
        else "pcmu",
    )


def _model_vendor(r: SettingsReader) -> tuple[Literal["azure", "openai"], str, str, str | None]:
    """Exactly one realtime vendor: Azure OpenAI (AZURE_OPENAI_ENDPOINT) or OpenAI (OPENAI_API_KEY)."""
    azure = r.optional("AZURE_OPENAI_ENDPOINT") is not None
    openai_key = r.optional("OPENAI_API_KEY")
    if azure and openai_key:
        r.problems.append(
            "AZURE_OPENAI_ENDPOINT (Azure OpenAI) and OPENAI_API_KEY (OpenAI) are both set: "
            "configure one realtime model vendor, not both"
        )
    if openai_key and not azure:
        return (
            "openai",
            r.url("OPENAI_BASE_URL", OPENAI_BASE_URL, schemes=MODEL_URL_SCHEMES),
            r.text("OPENAI_REALTIME_MODEL", DEFAULT_MODEL),
            openai_key,
        )
    if not azure:
        r.problems.append("AZURE_OPENAI_ENDPOINT is required for Azure OpenAI, or OPENAI_API_KEY for OpenAI")
    return (
        "azure",
        r.optional_url("AZURE_OPENAI_ENDPOINT", schemes=MODEL_URL_SCHEMES) or "ws://invalid",
        r.text("AZURE_OPENAI_DEPLOYMENT", DEFAULT_MODEL),
        r.optional("AZURE_OPENAI_API_KEY"),
    )


def _profiles(r: SettingsReader) -> dict[str, Profile]:
    directory = resolve_profiles_dir(r.text("AOAI_PROFILES_DIR", DEFAULT_PROFILES_DIR))
    if not directory.is_dir():
        if r.optional("AOAI_PROFILES_DIR") is not None:
            r.problems.append(f"AOAI_PROFILES_DIR={str(directory)!r} is not a directory")
        return {}
    try:
        return load_profiles(directory)
    except ProfileError as exc:
        r.problems.append(f"AOAI_PROFILES_DIR: {exc}")
        return {}
