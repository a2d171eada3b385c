"""Everything a call needs, on one machine: the dev gateway, a phone network and the model.

The model is the offline realtime engine unless a vendor is configured: AZURE_OPENAI_ENDPOINT (Azure
OpenAI) or OPENAI_API_KEY (OpenAI), and then the same stack talks to it: a configuration change, not
a code change. The phone network is the ACS emulator (`provider="acs"`), unless the stack is started
with `real_acs` (a real number through a tunnel), or the Twilio emulator (`provider="twilio"`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

from all_in_one.functions_host import FunctionKeys
from all_in_one.gateway import create_gateway
from emulators.acs.emulator import AcsEmulator
from emulators.realtime.server import EngineConfig
from emulators.realtime.server import create_app as create_engine
from emulators.serving import base_url, listen, serve, serve_on
from emulators.twilio.emulator import TwilioEmulator
from functions import runtime as functions_runtime
from functions.twilio_webhook import VOICE_ROUTE, public_url
from media_host.call_events import CallObserver
from media_host.host import HOST
from media_host.settings import MediaSettings

from .records import CallRecord, CallRecords
from .softphone import SoftphoneContext, add_softphone
from .softphone.browser_call import CallRouter

Provider = Literal["acs", "twilio"]
PROVIDERS: tuple[Provider, ...] = ("acs", "twilio")
OUR_NUMBER = "+18005550100"  # the emulated number (ACS or Twilio) the demo caller dials
LOCAL_PROFILE = "restaurant"
# The emulated ACS dials no one, so every number may be "called" (OUTBOUND_ALLOW_LIST guards real ACS).
EMULATED_OUTBOUND_ALLOW_LIST = ",".join(f"+{digit}*" for digit in range(1, 10))


@dataclass
class LocalStack:
    host: str = "127.0.0.1"
    port: int = 0
    provider: Provider = "acs"  # which emulated phone network calls come from
    real_acs: bool = False  # use the ACS settings in the environment instead of the emulator
    emulator: AcsEmulator = field(default_factory=AcsEmulator)
    twilio: TwilioEmulator = field(default_factory=TwilioEmulator)
    # the gateway checks it like the Functions host; LOCAL_FUNCTION_KEY keeps it across restarts
    function_key: str = field(
        default_factory=lambda: os.environ.get("LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(24)
    )
    gateway_url: str = ""
    model_url: str = ""
    number: str = OUR_NUMBER  # the number calls are made to
    records: CallRecords = field(default_factory=CallRecords)  # what the media host told of each call
    calls_to_pages: CallRouter = field(default_factory=CallRouter)  # the softphone's calls
    softphone: SoftphoneContext | None = None  # once started
    _runners: list[web.AppRunner] = field(default_factory=list)
    _gateway: web.Application | None = None

    async def start(self, env: Mapping[str, str] | None = None) -> None:
        """Start the model (unless a vendor's), the phone network and the gateway; point the settings
        at them."""
        env = dict(os.environ if env is None else env)
        offline_model = not (env.get("AZURE_OPENAI_ENDPOINT") or env.get("OPENAI_API_KEY"))
        if offline_model:
            engine_url = await self._serve(create_engine(EngineConfig()), self.host, 0)
            env.update({"AZURE_OPENAI_ENDPOINT": engine_url, "AZURE_OPENAI_API_KEY": "offline-engine"})
        if self.provider == "twilio":
            await self.twilio.serve()
            env.update(self.twilio.settings_env())
            if offline_model:  # it speaks PCM 24 kHz only: the media host converts Twilio's μ-law
                env["TWILIO_MODEL_AUDIO"] = "pcm24"
        elif not self.real_acs:
            await self.emulator.start()
            env.update(self.emulator.settings_env())
            env.setdefault("ACS_PHONE_NUMBER", OUR_NUMBER)
            env.setdefault("OUTBOUND_ALLOW_LIST", EMULATED_OUTBOUND_ALLOW_LIST)
            env.setdefault("CALLER_CHOOSES_PROFILE", "true")  # the softphone picks a profile and voice
            self.emulator.dial_observers.append(self.calls_to_pages.on_dialled)
        self.number = env.get("ACS_PHONE_NUMBER", "") if self.provider == "acs" else OUR_NUMBER
        env.setdefault("AOAI_INBOUND_PROFILE", LOCAL_PROFILE)
        # Bound first: the media host signs Twilio's stream URL with the gateway's own address.
        sock = listen(self.host, self.port)
        self.gateway_url = base_url(sock)
        if not self.real_acs:  # ws:// is taken on loopback only, as a stand-in's (common/twiml.py)
            env.update({"CALLBACK_URI_HOST": self.gateway_url, "MEDIA_HOST_URL": "ws" + self.gateway_url[4:]})
        try:
            media_settings = MediaSettings.from_env(env)
        except BaseException:
            sock.close()
            raise
        self.model_url = media_settings.model.realtime_url()
        self._gateway = create_gateway(media_settings, keys=FunctionKeys(self.function_key))
        if self.provider == "acs":  # the softphone calls through ACS, emulated or real
            self.softphone = SoftphoneContext(
                gateway_url=self.gateway_url,
                function_key=self.function_key,
                incoming_call_url=self.incoming_call_url,
                number=self.number,
                emulator=None if self.real_acs else self.emulator,
                profiles=tuple(sorted(media_settings.profiles)),
                default_profile=env["AOAI_INBOUND_PROFILE"],
                default_voice=media_settings.model.voice,
                router=self.calls_to_pages,
            )
            add_softphone(self._gateway, self.softphone)
        runner, _ = await serve_on(self._gateway, sock)
        self._runners.append(runner)
        # told about every call, as the audit trail is
        self._gateway[HOST].observers.extend([self.records, self.calls_to_pages])
        os.environ.update(env)  # the Functions read it at first use, as in Azure
        await functions_runtime.reset()

    async def _serve(self, app: web.Application, host: str, port: int) -> str:
        runner, url = await serve(app, host, port)
        self._runners.append(runner)
        return url

    @property
    def incoming_call_url(self) -> str:
        return f"{self.gateway_url}/api/incoming-call?code={self.function_key}"

    @property
    def twilio_voice_url(self) -> str:
        """The voice webhook as the Twilio number is configured with it (and the signature covers)."""
        return public_url(self.gateway_url, VOICE_ROUTE)

    def observe(self, observer: CallObserver) -> None:
        """Tell `observer` of every call from now on (after start), as `records` is told."""
        assert self._gateway is not None, "start the stack first"
        self._gateway[HOST].observers.append(observer)

    def record(self, call_connection_id: str) -> CallRecord | None:
        """What the media host told of a call, by its call_connection_id: ACS's, or a Twilio StreamSid."""
        return self.records.by_call.get(call_connection_id)

    async def close(self) -> None:
        if self.provider == "twilio":
            await self.twilio.close()
        elif not self.real_acs:
            await self.emulator.close()
        for runner in reversed(self._runners):  # the gateway's cleanup closes the control plane's runtime
            await runner.cleanup()
