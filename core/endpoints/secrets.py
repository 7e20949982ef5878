"""/v1/secrets: a token's named values for its tasks. Create or replace, list, delete.

A value goes in once and never comes out of the API: it is sealed (``core.sealing``)
before it is written, only the runner opens it (just before the attempt that lists it),
and every answer here carries names and times only. Another token's secret is not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.auth import require_token
from core.errors import ApiError, Detail
from core.openapi import Document
from core.responses import ModelResponse
from core.sealing import Keyring
from core.state import AppState, get_state
from core.store import secrets as store
from core.transitions import NewJob
from core.validation import SECRET_NAME_MESSAGE, SECRET_NAME_PATTERN, parse_json
from wire import SecretInfo, SecretList

__all__ = ["openapi_paths", "require_known", "routes"]

_NAME = re.compile(SECRET_NAME_PATTERN)


def _invalid(loc: list[str | int], msg: str) -> ApiError:
    where = ".".join(str(p) for p in loc)
    return ApiError(422, "validation_error", f"{where}: {msg}", [Detail(loc, msg)])


def _keyring(state: AppState) -> Keyring:
    if state.keyring is None:
        raise ApiError(
            503,
            "secrets_unconfigured",
            "secrets are not configured on this deployment (HOMERUN_SECRETS_KEYRING_FILE)",
        )
    return state.keyring


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    if not _NAME.match(name) or "\n" in name:
        raise _invalid(["path", "name"], f"{SECRET_NAME_MESSAGE} (got {name[:80]!r})")
    return name


def _value(body: Any, limit: int) -> bytes:
    if not isinstance(body, dict):
        raise _invalid(["body"], 'must be a JSON object: {"value": "..."}')
    unknown = sorted(set(body) - {"value"})
    if unknown:
        raise _invalid(["body", unknown[0]], "unknown field (known: value)")
    value = body.get("value")
    if not isinstance(value, str) or not value:
        raise _invalid(["body", "value"], "required: a non-empty string")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid(["body", "value"], "contains a lone surrogate (not UTF-8)") from None
    if len(data) > limit:
        raise _invalid(
            ["body", "value"],
            f"is {len(data)} bytes; the limit is {limit} (HOMERUN_SECRET_MAX_BYTES)",
        )
    return data


async def put_secret(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    name = _name(request)
    keyring = _keyring(state)
    value = _value(parse_json(await request.body()), state.settings.secret_max_bytes)
    names = await store.list_names(state.reads, principal.id)
    if name not in {n.name for n in names} and len(names) >= state.settings.max_secrets_per_token:
        raise ApiError(
            409,
            "too_many_secrets",
            f"the token has {len(names)} secrets, the limit"
            " (HOMERUN_MAX_SECRETS_PER_TOKEN); delete one first",
            [Detail(["path", "name"], "no room for another secret")],
        )
    created = await store.put(
        state.db.primary, principal.id, name, keyring.seal(principal.id, name, value)
    )
    await state.reads.note_write(principal.id)
    info = next(i for i in await store.list_names(state.reads, principal.id) if i.name == name)
    return ModelResponse(_view(info), status_code=201 if created else 200)


async def require_known(
    state: AppState, token_id: str, job: NewJob, at: Sequence[str] = ("body",)
) -> None:
    """422 naming each secret a task of ``job`` lists that the token does not have.

    ``at`` is where the job sits in the request (a schedule's is ``body.job``).
    """
    wanted = [name for task in job.tasks for name in task.secrets]
    unknown = await store.unknown_names(state.db.primary, token_id, wanted)
    if not unknown:
        return
    details = [
        Detail(
            [*at, "tasks", i, "secrets", j],
            f"unknown secret {name!r}: this token has no secret of that name"
            " (PUT /v1/secrets/{name} first)",
        )
        for i, task in enumerate(job.tasks)
        for j, name in enumerate(task.secrets)
        if name in unknown
    ]
    where = ".".join(str(p) for p in details[0].loc)
    raise ApiError(422, "validation_error", f"{where}: {details[0].msg}", details)


def _view(info: store.SecretName) -> SecretInfo:
    return SecretInfo(
        name=info.name, key_id=info.key_id, created_at=info.created_at, updated_at=info.updated_at
    )


async def list_secrets(request: Request) -> Response:
    principal = await require_token(request)
    names = await store.list_names(get_state(request).reads, principal.id)
    return ModelResponse(SecretList(secrets=[_view(n) for n in names]))


async def delete_secret(request: Request) -> Response:
    principal = await require_token(request)
    state = get_state(request)
    name = _name(request)
    if not await store.delete(state.db.primary, principal.id, name):
        raise ApiError(
            404, "not_found", f"no secret {name!r}", [Detail(["path", "name"], "no such secret")]
        )
    await state.reads.note_write(principal.id)
    return Response(status_code=204)


async def secret(request: Request) -> Response:
    return await (put_secret if request.method == "PUT" else delete_secret)(request)


routes: Iterable[BaseRoute] = [
    Route("/v1/secrets", list_secrets, methods=["GET"], name="list_secrets"),
    Route("/v1/secrets/{name}", secret, methods=["PUT", "DELETE"], name="secret"),
]


def openapi_paths(doc: Document) -> dict[str, Any]:
    name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": SECRET_NAME_PATTERN, "maxLength": 64},
        "description": "The file name under /run/secrets in the task's container.",
    }
    unconfigured = doc.error("No keyring on this deployment, or the database is unavailable.")
    return {
        "/v1/secrets": {
            "get": {
                "operationId": "listSecrets",
                "summary": "The token's secrets: names and times, never values",
                "security": [{"bearer": []}],
                "responses": {"200": doc.ok("The secrets, by name.", SecretList), **doc.authed()},
            }
        },
        "/v1/secrets/{name}": {
            "put": {
                "operationId": "putSecret",
                "summary": "Create or replace a secret (sealed at rest; never answered back)",
                "security": [{"bearer": []}],
                "parameters": [name],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["value"],
                                "properties": {"value": {"type": "string", "minLength": 1}},
                            }
                        }
                    },
                },
                "responses": {
                    "200": doc.ok("Replaced.", SecretInfo),
                    "201": doc.ok("Created.", SecretInfo),
                    "400": doc.error("Body is not JSON."),
                    **doc.authed(),
                    "409": doc.error("The token has HOMERUN_MAX_SECRETS_PER_TOKEN secrets."),
                    "413": doc.too_large(),
                    "422": doc.error("A malformed name or value; the detail says which."),
                    "503": doc.error(
                        "No keyring on this deployment, or the database is unavailable."
                    ),
                },
            },
            "delete": {
                "operationId": "deleteSecret",
                "summary": "Delete a secret (tasks already queued that list it will fail)",
                "security": [{"bearer": []}],
                "parameters": [name],
                "responses": {
                    "204": {"description": "Deleted."},
                    **doc.authed(),
                    "404": doc.error("No such secret for this token."),
                    "422": doc.error("A malformed name."),
                    "503": unconfigured,
                },
            },
        },
    }
