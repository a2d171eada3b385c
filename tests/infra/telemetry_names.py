"""What the product writes to Application Insights, read from its source with `ast` (never a list kept
by hand): the customEvents and customMetrics names, the customDimensions and customMeasurements keys,
and every string constant (reason codes such as `capacity` or the `jwt_` prefix).

Recognised, in common/, functions/, media_host/, all_in_one/ and function_app.py:
- `<anything>.event("Name", ..., key=...)` and `<anything>.metric("name", ..., key=...)`: names, and
  their keyword arguments as dimensions (`measurements={...}` as measurements);
- `DataPoint(name="name")`: a metric made without `.metric` (e.g. `telemetry_dropped`);
- dimensions that arrive through `**splat`: the keys of the dict literals of a module that splats into
  an event, of any `counts={...}` argument (CallEnded's counts), and of `_properties(ids, {...})`;
- CALL_DIMENSIONS and `plane`, which common.telemetry puts on every record.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from common.telemetry import CALL_DIMENSIONS
from tests.infra.bicep import ROOT

PRODUCT = ("common", "functions", "media_host", "all_in_one")


@dataclass
class Written:
    events: set[str] = field(default_factory=set)
    metrics: set[str] = field(default_factory=set)
    dimensions: set[str] = field(default_factory=set)
    measurements: set[str] = field(default_factory=set)
    strings: set[str] = field(default_factory=set)  # every str constant, f-string parts included


def product_files() -> Iterator[Path]:
    yield ROOT / "function_app.py"
    for folder in PRODUCT:
        yield from sorted((ROOT / folder).rglob("*.py"))


def _string(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dict_keys(node: ast.AST) -> set[str]:
    if not isinstance(node, ast.Dict):
        return set()
    return {key for key in (_string(k) for k in node.keys) if key is not None}


@functools.cache
def written() -> Written:
    found = Written(dimensions={*CALL_DIMENSIONS, "plane"})
    for path in product_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        splats = False
        module_dicts: set[str] = set()
        for node in ast.walk(tree):
            if (text := _string(node)) is not None:
                found.strings.add(text)
            if isinstance(node, ast.Dict):
                module_dicts |= _dict_keys(node)
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            called = (
                func.attr
                if isinstance(func, ast.Attribute)
                else func.id
                if isinstance(func, ast.Name)
                else ""
            )
            if called in ("event", "metric") and node.args and (name := _string(node.args[0])) is not None:
                (found.events if called == "event" else found.metrics).add(name)
                for keyword in node.keywords:
                    if keyword.arg is None:
                        splats = True
                    elif keyword.arg == "measurements":
                        found.measurements |= _dict_keys(keyword.value)
                    else:
                        found.dimensions.add(keyword.arg)
            if called == "DataPoint":
                for keyword in node.keywords:
                    if keyword.arg == "name" and (name := _string(keyword.value)) is not None:
                        found.metrics.add(name)
            if called == "_properties":
                for argument in node.args:
                    found.dimensions |= _dict_keys(argument)
            for keyword in node.keywords:
                if keyword.arg == "counts":
                    found.dimensions |= _dict_keys(keyword.value)
        if splats:
            found.dimensions |= module_dicts
    return found
