"""Bicep as pycep-parser 0.7.1 reads it, and a renderer that turns its expression trees back into
short Bicep-like text, so tests can say `render(x) == "drainSeconds + 15"`.

pycep gives identifiers and string literals alike as plain strings ('principalId' may be either);
the tests compare rendered text, where that ambiguity does not matter.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, cast

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"

_BINARY = {
    "add": "+",
    "minus": "-",
    "multiply": "*",
    "divide": "/",
    "modulo": "%",
    "greater_than": ">",
    "greater_than_or_equals": ">=",
    "less_than": "<",
    "less_than_or_equals": "<=",
    "equals": "==",
    "not_equals": "!=",
    "and": "&&",
    "or": "||",
    "coalesce": "??",
}


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    return cast(dict[str, Any], BicepParser().parse(file_path=path))


def module(name: str) -> dict[str, Any]:
    return parse(MODULES / f"{name}.bicep")


def main() -> dict[str, Any]:
    return parse(INFRA / "main.bicep")


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's own config, under its `if (...)` when it has one."""
    config: dict[str, Any] = resource["config"]
    inner = config.get("config")
    return inner if isinstance(inner, dict) and "condition" in config else config


def condition(resource: dict[str, Any]) -> str | None:
    config = resource["config"]
    return render(config["condition"]) if "condition" in config and "config" in config else None


def render(node: Any) -> str:
    if isinstance(node, bool):
        return "true" if node else "false"
    if node is None:
        return "null"
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, list):
        return "[" + ", ".join(render(item) for item in node) + "]"
    if isinstance(node, dict):
        if set(node) == {"operator"}:
            return _operator(node["operator"])
        if set(node) == {"function"}:
            function = node["function"]
            arguments = [render(v) for v in (function.get("parameters") or {}).values() if v is not None]
            return f"{function['type']}({', '.join(arguments)})"
        return "{" + ", ".join(f"{_key(k)}: {render(v)}" for k, v in node.items()) + "}"
    raise TypeError(f"unexpected node {node!r}")


def _key(key: str) -> str:
    return key.strip("'")


def _operator(operator: dict[str, Any]) -> str:
    kind, operands = operator["type"], operator["operands"]
    if kind == "property_accessor":
        return f"{render(operands['operand_1'])}.{render(operands['operand_2'])}"
    if kind == "index_accessor":
        return f"{render(operands['operand_1'])}[{render(operands['operand_2'])}]"
    if kind == "conditional":
        cond, yes, no = (render(operands[k]) for k in ("condition", "true_value", "false_value"))
        return f"{cond} ? {yes} : {no}"
    if kind == "not":
        return "!" + render(operands["bool_value"])
    if kind in _BINARY:
        return f"{render(operands['operand_1'])} {_BINARY[kind]} {render(operands['operand_2'])}"
    return f"{kind}({', '.join(render(v) for v in operands.values())})"


def env_list(container: dict[str, Any]) -> dict[str, str]:
    """A container's env as name -> rendered value (names must be unique)."""
    names = [entry["name"] for entry in container["env"]]
    assert len(names) == len(set(names)), f"duplicate env names: {sorted(names)}"
    return {entry["name"]: render(entry.get("value", entry.get("secretRef"))) for entry in container["env"]}


def identifiers(text: str) -> set[str]:
    """Bare identifiers and those inside ${...} of a rendered expression."""
    return set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text))
