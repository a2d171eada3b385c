"""Everything a call needs, on one machine: the dev gateway, the ACS emulator and the model.

The model is the offline realtime engine unless AZURE_OPENAI_ENDPOINT is set, in which case the
same stack talks to Azure OpenAI: a configuration change, not a code change. Likewise ACS: the
emulator, unless the stack is started with `real_acs` (a real number through a tunnel).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from emulators.acs.emulator import AcsEmulator
from emulators.realtime.server import EngineConfig
from emulators.realtime.server import create_app as create_engine
from emulators.serving import serve
from functions import runtime as functions_runtime
from media_host.app import HOST
from media_host.call_session import CallSession
from media_host.settings import MediaSettings

from .gateway import create_gateway

OUR_NUMBER = "+18005550100"  # the emulated ACS number the demo caller dials
LOCAL_PROFILE = "restaurant"
# The emulated ACS dials no one, so every number may be "called" (OUTBOUND_ALLOW_LIST guards real ACS).
EMULATED_OUTBOUND_ALLOW_LIST = ",".join(f"+{digit}*" for digit in range(1, 10))


@dataclass
class LocalStack:
    host: str = "127.0.0.1"
    port: int = 0
    real_acs: bool = False  # use the ACS settings in the environment instead of the emulator
    emulator: AcsEmulator = field(default_factory=AcsEmulator)
    # the gateway checks it like the Functions host; LOCAL_FUNCTION_KEY keeps it across restarts
    function_key: str = field(
        default_factory=lambda: os.environ.get("LOCAL_FUNCTION_KEY") or secrets.token_urlsafe(24)
    )
    gateway_url: str = ""
    model_url: str = ""
    number: str = OUR_NUMBER  # the ACS number calls are made to
    _runners: list[web.AppRunner] = field(default_factory=list)
    _gateway: web.Application | None = None

    async def start(self, env: Mapping[str, str] | None = None) -> None:
        """Start the model (unless Azure's), the emulator and the gateway; point the settings at them."""
        env = dict(os.environ if env is None else env)
        self.model_url = env.get("AZURE_OPENAI_ENDPOINT", "")
        if not self.model_url:
            self.model_url = await self._serve(create_engine(EngineConfig()), self.host, 0)
            env.update({"AZURE_OPENAI_ENDPOINT": self.model_url, "AZURE_OPENAI_API_KEY": "offline-engine"})
        if not self.real_acs:
            await self.emulator.start()
            env.update(self.emulator.settings_env())
            env.setdefault("ACS_PHONE_NUMBER", OUR_NUMBER)
            env.setdefault("OUTBOUND_ALLOW_LIST", EMULATED_OUTBOUND_ALLOW_LIST)
        self.number = env.get("ACS_PHONE_NUMBER", "")
        env.setdefault("AOAI_INBOUND_PROFILE", LOCAL_PROFILE)
        media_settings = MediaSettings.from_env(env)
        self._gateway = create_gateway(media_settings, function_key=self.function_key)
        self.gateway_url = await self._serve(self._gateway, self.host, self.port)
        if not self.real_acs:  # the Functions read these at first use, as in Azure
            env.update({"CALLBACK_URI_HOST": self.gateway_url, "MEDIA_HOST_URL": "ws" + self.gateway_url[4:]})
        os.environ.update(env)
        await functions_runtime.reset()

    async def _serve(self, app: web.Application, host: str, port: int) -> str:
        runner, url = await serve(app, host, port)
        self._runners.append(runner)
        return url

    @property
    def incoming_call_url(self) -> str:
        return f"{self.gateway_url}/api/incoming-call?code={self.function_key}"

    def session(self, call_connection_id: str) -> CallSession | None:
        assert self._gateway is not None
        return next(
            (s for s in self._gateway[HOST].calls if s.ids.call_connection_id == call_connection_id), None
        )

    async def close(self) -> None:
        if not self.real_acs:
            await self.emulator.close()
        for runner in reversed(self._runners):
            await runner.cleanup()
        await functions_runtime.reset()
