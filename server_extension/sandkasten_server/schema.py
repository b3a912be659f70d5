"""The OpenAPI document, and request validation against its schemas.

Handlers validate bodies with the very schemas the document publishes, so
what is documented is what is accepted.
"""

from __future__ import annotations

import functools
import importlib.resources
from typing import Any

import jsonschema
import yaml

from .errors import ApiError


@functools.cache
def openapi() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath("openapi.yaml").read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


@functools.cache
def _validator(name: str) -> jsonschema.protocols.Validator:
    schema = {"$ref": "#/components/schemas/%s" % name, "components": openapi()["components"]}
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema)
    return validator


def _where(error: jsonschema.ValidationError) -> str:
    field = ".".join(str(part) for part in error.absolute_path)
    return "field '%s'" % field if field else "the body"


def validate(name: str, data: Any) -> dict[str, Any]:
    """``data`` if it matches schema ``name``; else a 400 naming the first bad field."""
    error = jsonschema.exceptions.best_match(_validator(name).iter_errors(data))
    if error is not None:
        raise ApiError(400, "bad_request", "%s: %s" % (_where(error), error.message))
    assert isinstance(data, dict)
    return data
