"""Control-plane settings: read and validated once per process, every problem named.

Unlike the media host, a bad setting must not stop the process: the Functions worker would then
index nothing and even /api/health would be dark. So problems are kept per setting name; each
function names the settings it needs and answers 503 when one of them is bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from common.acs_jwt import ACS_ISSUER, ACS_OPENID_CONFIG_URL
from common.profiles import APP_ROOT, DEFAULT_PROFILES_DIR, profile_problem, resolve_profiles_dir
from common.settings_reader import E164, SettingsReader
from common.telemetry import TELEMETRY_SETTINGS, TelemetrySettings
from common.twilio_auth import credential_problems
from common.twiml import connect_stream, stream_url, websocket_url

from .screening import NumberList, parse_number_list

T = TypeVar("T")


AUDIO_FORMATS = {"pcm24kmono": "pcm24KMono", "pcm16kmono": "pcm16KMono"}  # SettingsReader lowercases

# What each function needs; a problem with any of them makes that function answer 503.
ACS_CLIENT = ("ACS_ENDPOINT", "AZURE_COMMUNICATION_CONNECTION_STRING")
ACS_JWT = ("ACS_RESOURCE_ID", "ACS_JWT_ISSUER", "ACS_OPENID_CONFIG_URL")
ACS = (*ACS_JWT, *ACS_CLIENT)  # what only ACS numbers need
MEDIA = ("CALLBACK_URI_HOST", "MEDIA_HOST_URL", "MEDIA_AUDIO_FORMAT", "AOAI_PROFILES_DIR")
OUTBOUND = ("OUTBOUND_ALLOW_LIST", "OUTBOUND_CALLS_PER_MINUTE")
# Optional for the deployment (ACS-only ones leave them unset), required by the Twilio webhooks.
TWILIO = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")


# Every setting /api/health reports on (present and valid), never with its value.
SETTING_NAMES = (
    *ACS_JWT,
    *ACS_CLIENT,
    "AZURE_CLIENT_ID",
    *MEDIA,
    "AOAI_INBOUND_PROFILE",
    "CALLER_CHOOSES_PROFILE",
    "ACS_PHONE_NUMBER",
    "ACS_INBOUND_NUMBERS",
    "CALLER_ALLOW_LIST",
    "CALLER_DENY_LIST",
    *OUTBOUND,
    *TWILIO,
    *TELEMETRY_SETTINGS,
)


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str = field(repr=False)  # keys the webhook signatures and our call tokens: a secret
    stream_url: str  # MEDIA_HOST_URL + /ws/twilio: where Twilio opens the call's media stream


@dataclass(frozen=True)
class ControlSettings:
    resource_id: str  # the ACS immutable resource id: JWT audience, and the prefix of our ACS users
    jwt_issuer: str
    openid_config_url: str
    acs_endpoint: str | None  # managed identity path
    connection_string: str | None  # local development path
    callback_host: str  # https://<function app>; callbacks go to <it>/api/callbacks
    media_host_url: str  # wss://<media host>; ACS dials <it>/ws/media
    audio_format: str  # wire value: pcm24KMono | pcm16KMono
    profiles_dir: Path
    inbound_profile: str | None
    caller_chooses_profile: bool  # honour an inbound call's X-MS-Custom-Profile/-Voice headers
    phone_number: str | None  # our caller id for PSTN calls
    inbound_numbers: frozenset[str]  # empty: any number of the resource is ours
    caller_allow: NumberList | None
    caller_deny: NumberList | None
    outbound_allow: NumberList  # empty: no phone number may be called (ACS users may)
    outbound_calls_per_minute: int  # per process, against toll fraud with a leaked key
    twilio: TwilioSettings | None  # None unless both TWILIO_* settings are set and valid
    telemetry: TelemetrySettings
    present: frozenset[str]  # names of the settings that are set (non-empty)
    problems: Mapping[str, str]  # setting name -> what is wrong with it

    @property
    def faults(self) -> dict[str, str]:
        """The problems that matter to this deployment: a Twilio-only one (the all-in-one on Fly.io)
        sets no ACS setting, and what ACS numbers would need is no fault of it."""
        twilio_only = self.twilio is not None and not self.present & set(ACS)
        return {name: why for name, why in self.problems.items() if not (twilio_only and name in ACS)}

    def unusable(self, names: Iterable[str], *, required: Iterable[str] = ()) -> list[str]:
        """Which of `names` a function cannot use: invalid, or (for those in `required`) unset."""
        needed = set(required)
        return [
            name for name in names if name in self.problems or (name in needed and name not in self.present)
        ]

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, app_root: Path = APP_ROOT) -> ControlSettings:
        r = SettingsReader(env)
        problems: dict[str, str] = {}

        def problem(name: str, message: str) -> None:
            problems[name] = f"{problems[name]}; {message}" if name in problems else message

        def read(name: str, reader: Callable[[str], T]) -> T:
            # SettingsReader collects messages; remember which setting each one belongs to.
            start = len(r.problems)
            value = reader(name)
            for message in r.problems[start:]:
                problem(name, message)
            return value

        http = ("https", "http")  # http only reaches a local emulator; real ACS insists on https
        resource_id = read("ACS_RESOURCE_ID", r.guid)
        acs_endpoint = read("ACS_ENDPOINT", lambda n: r.optional_url(n, schemes=http))
        connection_string = read("AZURE_COMMUNICATION_CONNECTION_STRING", r.connection_string)
        if not (acs_endpoint or connection_string) and not set(ACS_CLIENT) & problems.keys():
            for name in ACS_CLIENT:
                problem(
                    name,
                    "ACS_ENDPOINT (managed identity) or AZURE_COMMUNICATION_CONNECTION_STRING is required "
                    "to answer and place calls",
                )

        profiles_dir = resolve_profiles_dir(r.text("AOAI_PROFILES_DIR", DEFAULT_PROFILES_DIR), app_root)
        if r.optional("AOAI_PROFILES_DIR") and not profiles_dir.is_dir():
            problem("AOAI_PROFILES_DIR", f"AOAI_PROFILES_DIR={str(profiles_dir)!r} is not a directory")
        inbound_profile = r.optional("AOAI_INBOUND_PROFILE")
        if inbound_profile is not None:
            reason = profile_problem(profiles_dir, inbound_profile)
            if reason is not None:
                problem("AOAI_INBOUND_PROFILE", f"AOAI_INBOUND_PROFILE: {reason}")

        # Numbers are personal data: problems say which entry, never the value.
        phone_number = r.optional("ACS_PHONE_NUMBER")
        if phone_number is not None and not E164.fullmatch(phone_number):
            problem("ACS_PHONE_NUMBER", "ACS_PHONE_NUMBER is not an E.164 number (+14255550100)")
            phone_number = None
        inbound = _entries(r.optional("ACS_INBOUND_NUMBERS") or "")
        for position, number in enumerate(inbound, start=1):
            if not E164.fullmatch(number):
                problem(
                    "ACS_INBOUND_NUMBERS",
                    f"ACS_INBOUND_NUMBERS entry #{position} is not an E.164 number (+14255550100)",
                )
        inbound_numbers = frozenset(inbound or ([phone_number] if phone_number else []))

        lists: dict[str, NumberList | None] = {}
        for name in ("CALLER_ALLOW_LIST", "CALLER_DENY_LIST", "OUTBOUND_ALLOW_LIST"):
            raw = r.optional(name)
            lists[name] = None
            if raw is not None:
                parsed, list_problems = parse_number_list(name, raw)
                lists[name] = parsed
                for message in list_problems:
                    problem(name, message)

        # Secrets and ids: problems never quote the value.
        account_sid, auth_token = r.optional("TWILIO_ACCOUNT_SID"), r.optional("TWILIO_AUTH_TOKEN")
        for name, message in credential_problems(account_sid, auth_token).items():
            problem(name, message)

        media_host_url = websocket_url(
            read("MEDIA_HOST_URL", lambda n: r.required_url(n, schemes=("wss", "ws", "https", "http")))
        )
        twilio = None
        if account_sid and auth_token and not set(TWILIO) & problems.keys():
            twilio = TwilioSettings(account_sid, auth_token, stream_url(media_host_url))
            if "MEDIA_HOST_URL" not in problems:
                try:  # the TwiML builder is the one place that knows which stream URLs Twilio takes
                    connect_stream(twilio.stream_url, {})
                except ValueError:
                    problem(
                        "MEDIA_HOST_URL",
                        "MEDIA_HOST_URL must be wss://host[/path] without a query string for Twilio's "
                        "media streams (error 31920)",
                    )

        start = len(r.problems)
        telemetry = TelemetrySettings.read(r)
        for message in r.problems[start:]:  # each message starts with its setting's name
            problem(next(n for n in TELEMETRY_SETTINGS if message.startswith(n)), message)

        return cls(
            resource_id=resource_id,
            jwt_issuer=read("ACS_JWT_ISSUER", lambda n: r.url(n, ACS_ISSUER, schemes=http)),
            openid_config_url=read(
                "ACS_OPENID_CONFIG_URL", lambda n: r.url(n, ACS_OPENID_CONFIG_URL, schemes=http)
            ),
            acs_endpoint=acs_endpoint,
            connection_string=connection_string,
            callback_host=read("CALLBACK_URI_HOST", lambda n: r.required_url(n, schemes=http)),
            media_host_url=media_host_url,
            audio_format=AUDIO_FORMATS[
                read("MEDIA_AUDIO_FORMAT", lambda n: r.choice(n, "pcm24kmono", tuple(AUDIO_FORMATS)))
            ],
            profiles_dir=profiles_dir,
            inbound_profile=inbound_profile,
            caller_chooses_profile=read("CALLER_CHOOSES_PROFILE", r.flag),
            phone_number=phone_number,
            inbound_numbers=inbound_numbers,
            caller_allow=lists["CALLER_ALLOW_LIST"],
            caller_deny=lists["CALLER_DENY_LIST"],
            outbound_allow=lists["OUTBOUND_ALLOW_LIST"] or NumberList("OUTBOUND_ALLOW_LIST", frozenset(), ()),
            outbound_calls_per_minute=int(
                read("OUTBOUND_CALLS_PER_MINUTE", lambda n: r.number(n, 10, low=1, high=1000))
            ),
            twilio=twilio,
            telemetry=telemetry,
            present=frozenset(name for name in SETTING_NAMES if r.optional(name) is not None),
            problems=problems,
        )


def _entries(raw: str) -> list[str]:
    return [entry.strip() for entry in raw.split(",") if entry.strip()]
