"""The OpenAPI 3.1 document served at ``/openapi.json``, and the helpers that build it.

Each module under ``core/endpoints/`` declares its own operations beside its handlers, in
``openapi_paths(doc: Document) -> dict`` (one convention for every module, health and the
event streams included). Response bodies are named by their ``wire`` model
(``doc.ok("...", wire.Job)``); the components are generated from exactly the models the
operations name, so a shape is written once, in ``wire``. The document is built when the
app starts: the submission envelope comes from ``core.validation.JobSchemas`` and each task
type's payload schema from its plugin, so it describes this deployment exactly (its
limits, its task types). The schemathesis test holds every response to it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any

import msgspec

import wire
from core.validation import JobSchemas
from plugins.tasktypes import TaskType

__all__ = ["RETRY_AFTER", "Document", "build_openapi"]

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "string"}}}
SUBMISSION = "JobSubmission"
_UNAVAILABLE = "The database is unavailable (primary down); retry later."


def _embeddable(schema: Mapping[str, Any]) -> dict[str, Any]:
    # A plugin's schema is a document of its own; inside ours its $schema/$id would claim
    # to be a separate resource.
    return {k: copy.deepcopy(v) for k, v in schema.items() if k not in {"$schema", "$id"}}


def _submission(schemas: JobSchemas, task_types: Mapping[str, TaskType]) -> dict[str, Any]:
    """The submission envelope, with one branch per task type (a dynamic schema: plugins)."""
    submission = copy.deepcopy(schemas.submission)
    if task_types:
        # One branch per task type, so a generated submission can be valid for its type.
        branches = []
        for name in sorted(task_types):
            branch = copy.deepcopy(schemas.task)
            branch["properties"]["type"] = {"const": name}
            branch["properties"]["payload"] = _embeddable(task_types[name].payload_schema)
            branch["title"] = f"{name} task"
            branches.append(branch)
        submission["properties"]["tasks"]["items"] = {"oneOf": branches}
    return submission


class Document:
    """What an endpoint module builds its operations with.

    ``model`` and everything built on it record the model they name; ``build_openapi``
    then publishes the schemas of exactly those models.
    """

    def __init__(self, *, max_body_bytes: int) -> None:
        self.max_body_bytes = max_body_bytes
        self.models: list[type[msgspec.Struct]] = []

    def model(self, model: type[msgspec.Struct]) -> dict[str, str]:
        """A ``$ref`` to ``model``'s component."""
        if model not in self.models:
            self.models.append(model)
        return {"$ref": wire.REF_PREFIX + model.__name__}

    def submission(self) -> dict[str, str]:
        """A ``$ref`` to the job submission (built from the validator and the task types)."""
        return {"$ref": wire.REF_PREFIX + SUBMISSION}

    def ok(
        self, description: str, body: type[msgspec.Struct] | Mapping[str, Any]
    ) -> dict[str, Any]:
        """A JSON answer: a model, or (for a body no model describes) a schema."""
        schema = dict(body) if isinstance(body, Mapping) else self.model(body)
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def error(self, description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """An error answer: always ``wire.Error``."""
        response = self.ok(description, wire.Error)
        if headers:
            response["headers"] = dict(headers)
        return response

    def too_large(self) -> dict[str, Any]:
        return self.error(f"Request body over {self.max_body_bytes} bytes.")

    def authed(self, unavailable: str = _UNAVAILABLE) -> dict[str, Any]:
        """The answers every authenticated operation may give besides its own."""
        return {
            "401": self.error("Missing, malformed, unknown or revoked bearer token."),
            "429": self.error("Per-token rate limit exceeded.", RETRY_AFTER),
            "503": self.error(unavailable, RETRY_AFTER),
        }

    @staticmethod
    def path_id(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "format": "uuid"},
        }


def build_openapi(
    schemas: JobSchemas,
    task_types: Mapping[str, TaskType],
    route_modules: Iterable[ModuleType],
    *,
    max_body_bytes: int,
    version: str,
) -> dict[str, Any]:
    doc = Document(max_body_bytes=max_body_bytes)
    paths: dict[str, Any] = {}
    for module in route_modules:
        paths.update(module.openapi_paths(doc))
    components = wire.components(doc.models)
    components[SUBMISSION] = _submission(schemas, task_types)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "homerun",
            "version": version,
            "description": "Submit jobs of containerised tasks and follow them to a result."
            ' Every error is {"error": {"code", "message", "details": [{"loc", "msg"}]}}.',
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": components,
        },
    }
