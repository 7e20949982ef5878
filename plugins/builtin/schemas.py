"""JSON Schema fragments the built-in task types share, and the limits they encode.

Every built-in payload schema is draft 2020-12 with ``additionalProperties: false`` and a
``maxLength`` on every string, so a payload is judged at submission, before it costs a
container: a typo in a key is an error, not a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from plugins.tasktypes import PayloadError

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"

# The API bounds a whole payload (HOMERUN_MAX_PAYLOAD_BYTES, 256 KiB by default); these keep
# any one field well inside it and the environment inside what the kernel accepts for execve.
MAX_SOURCE_CHARS: Final = 128 * 1024
MAX_ENV_VARS: Final = 64
MAX_ENV_VALUE_CHARS: Final = 4096
MAX_ARGS: Final = 256
MAX_ARG_CHARS: Final = 4096

# HOMERUN_ is reserved for what homerun itself may set in a task's environment.
ENV_NAME_PATTERN: Final = r"^(?!HOMERUN_)[A-Za-z_][A-Za-z0-9_]{0,127}$"
# execve() cannot carry a NUL byte; refuse it at submission rather than fail at start.
NO_NUL_PATTERN: Final = r"^[^\u0000]*$"

ENV_SCHEMA: Final[Mapping[str, Any]] = {
    "type": "object",
    "description": "Extra environment variables for the task's process.",
    "maxProperties": MAX_ENV_VARS,
    "propertyNames": {"pattern": ENV_NAME_PATTERN},
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_ENV_VALUE_CHARS,
        "pattern": NO_NUL_PATTERN,
    },
}


def payload_schema(
    title: str, properties: Mapping[str, Any], required: list[str]
) -> dict[str, Any]:
    """A closed object schema: every key known, every required key present."""
    return {
        "$schema": DIALECT,
        "title": title,
        "type": "object",
        "properties": dict(properties),
        "required": required,
        "additionalProperties": False,
    }


def utf8(value: str, loc: tuple[str | int, ...]) -> bytes:
    """Encode text for a file or an exec argument; a lone surrogate is the payload's fault.

    JSON can carry ``"\\ud800"``, which no UTF-8 encoder accepts.
    """
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"not valid Unicode at character {exc.start}", loc) from None


def env_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """The payload's ``env``, copied so the spec never aliases the payload."""
    env: dict[str, str] = {}
    for name, value in payload.get("env", {}).items():
        utf8(value, ("env", name))
        env[name] = value
    return env
