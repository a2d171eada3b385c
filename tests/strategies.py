"""Hypothesis strategies for every parser of outside input (control plane, ACS, Realtime, Twilio).

`bodies(valid)`: what a door may be sent, as bytes: the valid document, it with one to three values
replaced (by anything) or removed, arbitrary JSON (huge ints and floats, NaN, nulls, nesting, unicode
with lone surrogates as JSON escapes, control characters, over-long strings), binary garbage,
100k-deep nesting and 5,000-digit numbers.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

HUGE = "\x00huge number\x00"  # replaced by 5,000 digits once encoded: json.dumps refuses such ints
DEEP = [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 50_000 + b"]" * 50_000]

nasty_text = st.one_of(
    st.text(max_size=20),
    st.text(st.characters(exclude_categories=()), max_size=20),  # control characters too
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=["Cs"]),  # lone surrogates
    st.integers(min_value=500, max_value=70_000).map(lambda n: "x" * n),
    st.sampled_from(["+14255550100\n", "8:acs:\n", "\ud800", "\x00", "", " ", HUGE]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**4000),
    st.floats(),  # NaN and infinities too: Python's json reads them
    nasty_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nasty_text, children, max_size=4),
    max_leaves=12,
)


def encode(value: Any) -> bytes:
    return json.dumps(value).encode().replace(json.dumps(HUGE).encode(), b"9" * 5000)


@st.composite
def mutations(draw: st.DrawFn, valid: Any) -> Any:
    """The valid document with one to three values replaced by anything, or removed."""
    doc = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        node = doc
        while isinstance(node, dict | list) and node:
            key = draw(st.sampled_from(list(node) if isinstance(node, dict) else range(len(node))))
            child = node[key]
            if isinstance(child, dict | list) and child and draw(st.booleans()):
                node = child
                continue
            if draw(st.integers(min_value=0, max_value=4)) == 0:
                del node[key]
            else:
                node[key] = draw(json_values)
            break
    return doc


def bodies(valid: Any) -> st.SearchStrategy[bytes]:
    return st.one_of(
        mutations(valid).map(encode),
        json_values.map(encode),
        st.binary(max_size=200),
        st.sampled_from(DEEP),
        st.just(encode(valid)),
    )


def any_of_bodies(valid: list[Any]) -> st.SearchStrategy[bytes]:
    """`bodies` of any of several valid documents (e.g. each kind of message a socket carries)."""
    return st.sampled_from(valid).flatmap(bodies)
