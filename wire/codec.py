"""The models to the API's JSON and back, and to the JSON Schemas ``/openapi.json`` publishes.

Encoding goes through ``msgspec.to_builtins`` and the standard ``json`` module rather than
``msgspec.json.encode`` for one reason: timestamps. msgspec writes UTC as ``...Z``; the API
has always written ``datetime.isoformat()`` (``...+00:00``), as the event stream still does,
and the answers must not change shape under existing clients.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, TypeAlias, TypeVar

import msgspec

__all__ = [
    "REF_PREFIX",
    "AnyJson",
    "DecodeError",
    "Timestamp",
    "Uuid",
    "components",
    "decode",
    "dumps",
    "to_builtins",
]

REF_PREFIX = "#/components/schemas/"

# msgspec leaves the format out of a datetime's schema; the document has always stated it.
Timestamp: TypeAlias = Annotated[
    datetime, msgspec.Meta(tz=True, extra_json_schema={"format": "date-time"})
]
# Ids travel as strings: a client compares them with the ids inside event bodies.
Uuid: TypeAlias = Annotated[str, msgspec.Meta(extra_json_schema={"format": "uuid"})]
AnyJson: TypeAlias = Annotated[Any, msgspec.Meta(description="Any JSON value, or null.")]

T = TypeVar("T")

# What a client gets when an answer is not JSON or does not fit its model
# (msgspec.ValidationError is a DecodeError).
DecodeError = msgspec.DecodeError


def _isoformat(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_builtins(value: object) -> Any:
    """The model as dicts, lists and scalars, timestamps left as ``datetime`` for ``dumps``."""
    return msgspec.to_builtins(value, builtin_types=(datetime,))


def dumps(value: object, **options: Any) -> str:
    """The model as the API's JSON text; ``options`` go to ``json.dumps`` (indent, ...)."""
    return json.dumps(to_builtins(value), default=_isoformat, **options)


def decode(data: bytes | str, into: type[T]) -> T:
    """An answer's JSON as its model; raises ``DecodeError`` when it does not fit.

    Fields the model does not know are ignored, so a newer server does not break an older
    client; everything the model does know is checked (types, enums, required fields).
    """
    return msgspec.json.decode(data, type=into)


def components(models: Iterable[type[msgspec.Struct]]) -> dict[str, dict[str, Any]]:
    """JSON Schemas of ``models`` and of everything they refer to, keyed by class name.

    Every object is closed (``additionalProperties: false``): the server encodes its
    answers from these models, so a field outside them is a bug the contract test
    should catch. (The models themselves tolerate unknown fields when decoding; see
    ``decode``.)
    """
    _, found = msgspec.json.schema_components(list(models), ref_template=REF_PREFIX + "{name}")
    for schema in found.values():
        if schema.get("type") == "object":
            schema["additionalProperties"] = False
    return found
