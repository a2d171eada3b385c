"""Function call arguments fitted to the declared JSON schema: valid for it, whatever it declares."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from emulators.realtime.tool_arguments import fit_arguments
from media_host.tools import EndCall, TransferToAgent

WANTED = {"reason": "caller said goodbye"}


def valid(arguments: dict[str, Any], schema: dict[str, Any]) -> bool:
    jsonschema.validate(arguments, schema)
    return True


def test_the_products_own_schemas_keep_what_the_assistant_meant() -> None:
    assert fit_arguments(EndCall.parameters, WANTED) == WANTED
    summary = {"summary": "Caller asked to speak to a person."}
    assert fit_arguments(TransferToAgent.parameters, summary) == summary


def test_no_parameters_or_no_properties_mean_no_arguments() -> None:
    assert fit_arguments(None, WANTED) == {}
    assert fit_arguments({"type": "object", "properties": {}}, WANTED) == {}
    assert fit_arguments({"type": "object"}, WANTED) == {}


def test_undeclared_properties_go_and_required_ones_come() -> None:
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "enum": ["completed", "caller_hung_up", "other"]},
            "message": {"type": "string"},
            "confirmed": {"type": "boolean", "default": True},
            "score": {"type": "number", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        },
        "required": ["reason", "message", "confirmed", "score", "tags"],
        "additionalProperties": False,
    }
    arguments = fit_arguments(schema, {**WANTED, "extra": 1})
    assert valid(arguments, schema)
    assert arguments["reason"] == "caller_hung_up"  # not an enum value: the closest one
    assert arguments["message"] == "caller said goodbye"  # the wanted text finds the required string
    assert arguments["confirmed"] is True and arguments["score"] == 1 and len(arguments["tags"]) == 1
    assert "extra" not in arguments


def test_types_are_converted_where_they_can_be() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "s": {"type": "string"}, "b": {"type": "boolean"}},
    }
    assert fit_arguments(schema, {"n": "7", "s": 3, "b": "false"}) == {"n": 7, "s": "3", "b": False}


def test_refs_any_of_and_nested_objects() -> None:
    schema = {
        "type": "object",
        "$defs": {
            "who": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        },
        "properties": {
            "reason": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 6}]},
            "caller": {"$ref": "#/$defs/who"},
        },
        "required": ["reason", "caller"],
    }
    arguments = fit_arguments(schema, WANTED)
    assert valid(arguments, schema)
    assert arguments["reason"] == "caller"  # cut to maxLength


# -- any schema the strategies below can make ----------------------------------------------------
NAMES = st.sampled_from(["reason", "summary", "note", "count", "flag", "when", "level", "items"])


@st.composite
def integer_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.none() | st.integers(-50, 50))
    span = draw(st.integers(0, 40))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0) + span + 2
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    if draw(st.booleans()):
        schema["multipleOf"] = draw(
            st.integers(1, 1 if "maximum" in schema or "exclusiveMaximum" in schema else 7)
        )
    return schema


@st.composite
def number_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    low = draw(st.none() | st.floats(-100, 100))
    if low is not None:
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        high = (low if low is not None else 0.0) + draw(st.floats(0.5, 50))
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = high
    return schema


@st.composite
def string_schema(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": draw(st.sampled_from(["string", ["string", "null"]]))}
    low = draw(st.none() | st.integers(0, 30))
    if low is not None:
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = (low or 0) + draw(st.integers(0, 30))
    return schema


LEAVES = st.one_of(
    string_schema(),
    integer_schema(),
    number_schema(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.text(max_size=5) | st.integers(), min_size=1, max_size=4, unique=True).map(
        lambda e: {"enum": e}
    ),
    st.text(max_size=5).map(lambda c: {"const": c}),
)


def _containers(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(
            lambda items, low, extra: {
                "type": "array",
                "items": items,
                "minItems": low,
                "maxItems": low + extra,
            },
            inner,
            st.integers(0, 3),
            st.integers(0, 3),
        ),
        st.lists(inner, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
        object_schema(inner),
    )


def object_schema(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        properties = draw(st.dictionaries(NAMES, inner, max_size=5))
        required = draw(st.lists(st.sampled_from(sorted(properties)), unique=True)) if properties else []
        schema: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        if draw(st.booleans()):
            schema["additionalProperties"] = False
        return schema

    return build()


SCHEMAS = object_schema(st.recursive(LEAVES, _containers, max_leaves=12))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(SCHEMAS, st.dictionaries(NAMES | st.text(max_size=8), JSON, max_size=5))
def test_whatever_the_schema_the_arguments_are_valid_for_it(
    schema: dict[str, Any], wanted: dict[str, Any]
) -> None:
    arguments = fit_arguments(schema, wanted)
    jsonschema.validate(arguments, schema)
    assert set(arguments) <= set(schema["properties"])  # only declared properties
    assert set(schema["required"]) <= set(arguments)
