"""Tools the model may call, and the seam through which a deployment adds its own.

A tool is any object with `name`, `description`, `parameters` (JSON schema) and an async `run`.
Set MEDIA_EXTRA_TOOLS=package.module:factory, where `factory(settings)` returns a list of tools,
or pass `tools=` to `create_app`.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from common.settings_reader import SettingsError
from common.telemetry import CallIds, Telemetry

from .leg import Leg
from .settings import MediaSettings


@dataclass(frozen=True)
class ToolContext:
    ids: CallIds  # the call, as telemetry and the provider know it
    leg: Leg  # hang_up() and transfer(target, operation_context=...) through the call's provider
    settings: MediaSettings
    telemetry: Telemetry  # for a tool's own audit events
    speech_finished: Callable[[], Awaitable[None]]  # until the assistant's current answer has played out
    ending: Callable[[str], None]  # record why the call is about to end, before acting on it


@dataclass(frozen=True)
class ToolResult:
    output: str  # what the model is told (usually JSON)
    respond: bool = True  # ask the model to speak about the result
    closes_call: bool = False  # the call is over (hung up): close the media stream


class Tool(Protocol):
    name: str
    description: str
    parameters: dict[str, Any]

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult: ...


def tool_schema(tool: Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    }


class EndCall:
    name = "end_call"
    description = (
        "End the phone call. Say a short goodbye to the caller first, then call this. "
        "Use it when the caller says goodbye or their request is complete."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "description": "Why the call is ending, in a few words."}
        },
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        await ctx.speech_finished()  # the goodbye is heard before the line goes dead
        ctx.ending("assistant_ended")
        await ctx.leg.hang_up()
        return ToolResult(output=json.dumps({"status": "ended"}), respond=False, closes_call=True)


class TransferToAgent:
    name = "transfer_to_agent"
    description = (
        "Transfer the caller to a human agent. Tell the caller you are transferring them before calling this. "
        "Use it when the caller asks for a person or you cannot help."
    )
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "One sentence for the agent: what the caller needs."}
        },
    }

    def __init__(self, target: str) -> None:
        self.target = target

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        await ctx.speech_finished()  # "I'm transferring you" is heard before the provider takes the caller
        ctx.telemetry.event("TransferRequested", ctx.ids, target=ctx.telemetry.show_number(self.target))
        await ctx.leg.transfer(self.target, operation_context="transfer_to_agent")
        ctx.ending("transferred")
        return ToolResult(output=json.dumps({"status": "transfer_started"}), respond=False)


def build_tools(settings: MediaSettings, extra: list[Tool] | None = None) -> list[Tool]:
    tools: list[Tool] = [EndCall()]
    if settings.transfer_target:
        tools.append(TransferToAgent(settings.transfer_target))
    if settings.extra_tools:
        tools.extend(load_tools(settings.extra_tools, settings))
    tools.extend(extra or [])
    names = [t.name for t in tools]
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be unique, got {names}")
    return tools


def load_tools(spec: str, settings: MediaSettings) -> list[Tool]:
    """Import `package.module:factory` and call it with the settings; any failure is a settings error
    naming MEDIA_EXTRA_TOOLS, so start-up stops with one line instead of a traceback."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SettingsError(f"MEDIA_EXTRA_TOOLS={spec!r} must look like 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
        return list(factory(settings))
    except Exception as exc:  # the operator's code: whatever it raises, say which setting brought it in
        detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        raise SettingsError(f"MEDIA_EXTRA_TOOLS={spec!r} does not load: {detail}") from exc
