"""/openapi.json documents every route there is, and only valid JSON Schema."""

from __future__ import annotations

from typing import Any

import jsonschema
from starlette.routing import Route

from core.app import ROUTE_MODULES
from core.openapi import build_openapi
from core.settings import Settings
from core.validation import JobSchemas
from tests.unit.core.test_validation import RUN


def spec() -> dict[str, Any]:
    return build_openapi(
        JobSchemas.for_settings(Settings(max_tasks_per_job=7)),
        {"run": RUN},
        ROUTE_MODULES,
        max_body_bytes=1234,
        version="9.9.9",
    )


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_every_route_is_documented_with_its_methods() -> None:
    paths = spec()["paths"]
    for module in ROUTE_MODULES:
        for route in module.routes:
            assert isinstance(route, Route)
            documented = paths.get(route.path_format)
            assert documented is not None, f"{route.path_format} is not in /openapi.json"
            methods = {m.lower() for m in route.methods or ()} - {"head"}
            assert methods == set(documented) - {"parameters"}, route.path_format


def test_refs_resolve_and_schemas_are_valid() -> None:
    document = spec()
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_submission_reflects_settings_and_task_types() -> None:
    submission = spec()["components"]["schemas"]["JobSubmission"]
    tasks = submission["properties"]["tasks"]
    assert tasks["maxItems"] == 7
    (branch,) = tasks["items"]["oneOf"]
    assert branch["properties"]["type"] == {"const": "run"}
    assert branch["properties"]["payload"] == RUN.payload_schema
    assert "1234 bytes" in spec()["paths"]["/v1/jobs"]["post"]["responses"]["413"]["description"]


def test_every_error_answer_is_the_one_error_shape() -> None:
    # One helper (Document.error) builds them all; /readyz's 503 is a Readiness report.
    for path, item in spec()["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or (path, status) == ("/readyz", "503"):
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)


def test_components_are_generated_from_the_models_the_operations_name() -> None:
    import wire

    schemas = spec()["components"]["schemas"]
    assert schemas["Job"] == wire.components([wire.Job])["Job"]
    assert schemas["Job"]["properties"]["tasks"]["items"] == {"$ref": "#/components/schemas/Task"}
