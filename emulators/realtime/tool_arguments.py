"""A function call's arguments shaped by the tool's declared `parameters` (a JSON schema).

The assistant knows what it wants to pass (`{"reason": "caller said goodbye"}` for end_call); the
session may have declared the tool with other properties, other types or required ones. A real model
writes arguments for the schema it was given, so the engine does too: `fit_arguments(schema, wanted)`
keeps the wanted values the schema declares (converted to the declared type where that is possible),
fills every required property it lacks (the schema's `const`, `default`, the `enum` value sharing most
words with the wanted value, else the first, `examples`, a wanted string the schema has no place for,
else the least value of the type within the declared bounds), and drops everything the schema does
not declare.

Covered: `type` (one or a list), `properties`, `required`, `additionalProperties` (a schema for a
required but undeclared property), `enum`, `const`, `default`, `examples`, `anyOf`/`oneOf` (the first
branch whose type fits), `allOf` (merged), `items`, `minItems`/`maxItems`, `minLength`/`maxLength`,
`minimum`/`maximum`/`exclusiveMinimum`/`exclusiveMaximum`, `multipleOf` (integers), `$ref` to `#/$defs`
or `#/definitions`. A `pattern` or `format` is not understood: the value is passed as is.
"""

from __future__ import annotations

import math
import re
from typing import Any

_MISSING: Any = object()
_TYPE_OF = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}
_WORD = re.compile(r"[a-z0-9]+")
_MAX_DEPTH = 16  # a self-referencing $ref stops here


def fit_arguments(parameters: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool declared with `parameters`, as close to `wanted` as the schema lets them be."""
    if not isinstance(parameters, dict):
        return {}  # no schema: a function without arguments
    declared = parameters.get("properties")
    names = set(declared) if isinstance(declared, dict) else set()
    spare = [v for k, v in wanted.items() if isinstance(v, str) and k not in names]
    value = _Fitter(parameters, spare).fit(parameters, wanted, 0)
    return value if isinstance(value, dict) else {}


class _Fitter:
    def __init__(self, root: dict[str, Any], spare: list[str]) -> None:
        self.root = root
        self.spare = spare  # wanted strings no declared property took: they fill required strings

    def fit(self, schema: Any, value: Any, depth: int) -> Any:
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            if value is not _MISSING and _in(value, enum):
                return value
            if value is _MISSING and "default" in schema and _in(schema["default"], enum):
                return schema["default"]
            if isinstance(value, str):
                self.spare.append(value)  # no place here: maybe a required string elsewhere takes it
            return _closest(enum, value)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k != key}
                resolved = [self.resolve({**rest, **self.resolve(b, depth)}, depth) for b in branches]
                chosen = next((b for b in resolved if _type_fits(b, value)), resolved[0])
                return self.fit(chosen, value, depth + 1)
        kind = self.kind(schema, value)
        if value is _MISSING:
            value = self.placeholder(schema, kind)
        if kind == "object":
            return self.fit_object(schema, value, depth)
        if kind == "array":
            return self.fit_array(schema, value, depth)
        return _scalar(schema, kind, value, self.spare)

    def resolve(self, schema: Any, depth: int) -> dict[str, Any]:
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target: Any = self.root
            for step in ref.removeprefix("#/").split("/") if ref.startswith("#/") else ["\0"]:
                target = target.get(step) if isinstance(target, dict) else None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return self.resolve({**(target if isinstance(target, dict) else {}), **rest}, depth + 1)
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for raw in parts:
                part = self.resolve(raw, depth + 1)
                props = {**(merged.get("properties") or {}), **(part.get("properties") or {})}
                required = [*(merged.get("required") or []), *(part.get("required") or [])]
                merged = {**merged, **part, "properties": props, "required": required}
            return merged
        return schema

    @staticmethod
    def kind(schema: dict[str, Any], value: Any) -> str:
        declared = schema.get("type")
        kinds = [declared] if isinstance(declared, str) else list(declared or [])
        if not kinds:
            if "properties" in schema or "required" in schema:
                return "object"
            if "items" in schema:
                return "array"
            return (_json_type(value) or "string") if value is not _MISSING else "string"
        have = _json_type(value) if value is not _MISSING else None
        for kind in kinds:
            if kind == have or (kind == "number" and have == "integer"):
                return str(kind)
        if have == "integer" and "number" in kinds:
            return "number"
        non_null = [k for k in kinds if k != "null"]
        return str(non_null[0] if non_null else kinds[0])

    def placeholder(self, schema: dict[str, Any], kind: str) -> Any:
        if "default" in schema and _json_type(schema["default"]) in (kind, None):
            return schema["default"]
        examples = schema.get("examples")
        if isinstance(examples, list) and examples and _json_type(examples[0]) == kind:
            return examples[0]
        if kind == "string" and self.spare:
            return self.spare.pop(0)
        return {"object": {}, "array": [], "string": "", "boolean": False, "null": None}.get(kind, 0)

    def fit_object(self, schema: dict[str, Any], value: Any, depth: int) -> dict[str, Any]:
        given = value if isinstance(value, dict) else {}
        declared = schema.get("properties")
        declared = declared if isinstance(declared, dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        out: dict[str, Any] = {}
        for name, sub in declared.items():
            if name in given:
                out[name] = self.fit(sub, given[name], depth + 1)
        for name in required:  # after the given ones: spare strings go to what is still missing
            if name not in out:
                sub = declared.get(name, schema.get("additionalProperties"))
                out[name] = self.fit(
                    sub if isinstance(sub, dict) else {}, given.get(name, _MISSING), depth + 1
                )
        return out

    def fit_array(self, schema: dict[str, Any], value: Any, depth: int) -> list[Any]:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        given = value if isinstance(value, list) else [value]
        low, high = _int_bound(schema.get("minItems"), 0), _int_bound(schema.get("maxItems"), None)
        out = [self.fit(items, v, depth + 1) for v in given[:high]]
        while len(out) < low:
            out.append(self.fit(items, _MISSING, depth + 1))
        return out


def _scalar(schema: dict[str, Any], kind: str, value: Any, spare: list[str]) -> Any:
    if kind == "null":
        return None
    if kind == "boolean":
        return value if isinstance(value, bool) else bool(value) and value not in ("false", "0", "no")
    if kind in ("integer", "number"):
        return _number(schema, kind, value)
    text = value if isinstance(value, str) else _text(value)
    low, high = _int_bound(schema.get("minLength"), 0), _int_bound(schema.get("maxLength"), None)
    if high is not None:
        text = text[:high]
    if len(text) < low:
        text = (text + " " + " ".join(spare) if text else " ".join(spare)).strip()[: high or None]
        text = text.ljust(low, "x")
    return text


def _number(schema: dict[str, Any], kind: str, value: Any) -> int | float:
    number = _as_number(value)
    low, high = _bound(schema, "minimum"), _bound(schema, "maximum")
    xlow, xhigh = _bound(schema, "exclusiveMinimum"), _bound(schema, "exclusiveMaximum")
    if kind == "integer":
        lows = [math.ceil(b) for b in (low,) if b is not None]
        lows += [math.floor(b) + 1 for b in (xlow,) if b is not None]
        highs = [math.floor(b) for b in (high,) if b is not None]
        highs += [math.ceil(b) - 1 for b in (xhigh,) if b is not None]
        whole = round(number)
        whole = max([whole, *lows])
        whole = min([whole, *highs])
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and not isinstance(multiple, bool) and multiple > 0 and whole % multiple:
            up = whole + multiple - whole % multiple
            whole = up if not highs or up <= min(highs) else whole - whole % multiple
        return int(whole)
    if low is not None and number < low:
        number = low
    if high is not None and number > high:
        number = high
    if (xlow is not None and number <= xlow) or (xhigh is not None and number >= xhigh):
        lowest = max(b for b in (low, xlow) if b is not None) if (low, xlow) != (None, None) else None
        highest = min(b for b in (high, xhigh) if b is not None) if (high, xhigh) != (None, None) else None
        if lowest is not None and highest is not None:
            number = (lowest + highest) / 2
        elif lowest is not None:
            number = lowest + 1
        elif highest is not None:
            number = highest - 1
    return number


def _bound(schema: dict[str, Any], key: str) -> float | None:
    value: Any = schema.get(key)
    return float(value) if _is_num(value) else None


def _as_number(value: Any) -> float:
    if isinstance(value, int | float):  # bool too: true is 1
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            number = 0.0
    return number if math.isfinite(number) else 0.0


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _int_bound(value: Any, default: int | None) -> Any:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _text(value: Any) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_type(value: Any) -> str | None:
    if value is None:
        return "null"
    return _TYPE_OF.get(type(value))


def _type_fits(schema: dict[str, Any], value: Any) -> bool:
    if value is _MISSING:
        return False
    declared = schema.get("type")
    kinds = [declared] if isinstance(declared, str) else list(declared or [])
    have = _json_type(value)
    if "enum" in schema:
        return isinstance(schema["enum"], list) and _in(value, schema["enum"])
    return not kinds or have in kinds or (have == "integer" and "number" in kinds)


def _closest(options: list[Any], value: Any) -> Any:
    """The option sharing the most words with `value` ("caller said goodbye" -> "caller_hung_up"); else the first."""
    words = set(_WORD.findall(str(value).lower())) if value is not _MISSING else set()
    shared = [len(words & set(_WORD.findall(str(o).lower()))) for o in options]
    return options[shared.index(max(shared))]


def _in(value: Any, options: list[Any]) -> bool:
    """`value in options` as JSON compares: true is not 1."""
    return any(type(value) is type(o) and value == o for o in options)
