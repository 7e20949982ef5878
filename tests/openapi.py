"""Validating a body against one component of an OpenAPI document, its ``$ref``s resolved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

_BASE = "urn:homerun:openapi"


def component_validator(document: Mapping[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` that follows refs into ``document``."""
    resource = Resource.from_contents(dict(document), default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(_BASE, resource)
    return jsonschema.Draft202012Validator(
        {"$ref": f"{_BASE}#/components/schemas/{name}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
