"""Server events checked against the official `openai` SDK's own GA types, strictly.

The SDK itself never validates what it receives (`parse_event` is `construct_type_unchecked`, and its
models allow extra fields), so a wrong literal or an unknown field would slip through it silently.
`strict_event(raw)` looks the event's class up in the SDK's `RealtimeServerEvent` union by its `type`,
validates the JSON with pydantic in strict mode (no coercion; every literal and required field is
checked) and then walks the result: any field the SDK's models do not declare is a problem too.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import pydantic
from openai.types.realtime import RealtimeServerEvent

# the union is Annotated[Union[...], PropertyInfo(discriminator="type")]: its members by their literal
_UNION = get_args(get_args(RealtimeServerEvent)[0])
SDK_EVENT_CLASSES: dict[str, type[pydantic.BaseModel]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls for cls in _UNION
}


class NotSdkConformant(AssertionError):
    pass


def strict_event(raw: str | bytes) -> pydantic.BaseModel:
    """The event as the SDK's model of its type, or NotSdkConformant saying every way it is not."""
    data = json.loads(raw)
    kind = data.get("type") if isinstance(data, dict) else None
    cls = SDK_EVENT_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise NotSdkConformant(f"type {kind!r} is not a server event of the SDK's RealtimeServerEvent")
    try:
        model = cls.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise NotSdkConformant(f"{kind}: {exc}") from None
    extra = list(extra_fields(model))
    if extra:
        raise NotSdkConformant(f"{kind}: fields the SDK does not declare: {extra}")
    return model


def sdk_problems(raws: list[str]) -> list[str]:
    """Every way the server events `raws` (JSON texts, in order) break the SDK's types."""
    found = []
    for n, raw in enumerate(raws):
        try:
            strict_event(raw)
        except NotSdkConformant as exc:
            found.append(f"#{n} {exc}")
    return found


def extra_fields(value: Any, path: str = "$") -> Any:
    """Paths of every field stored as an extra (undeclared) field anywhere inside `value`."""
    if isinstance(value, pydantic.BaseModel):
        for name in value.__pydantic_extra__ or {}:
            yield f"{path}.{name}"
        for name in type(value).model_fields:
            yield from extra_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            yield from extra_fields(item, f"{path}[{n}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from extra_fields(item, f"{path}.{key}")
