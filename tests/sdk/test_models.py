"""The Python SDK's models match the OpenAPI document: the same fields, read from the reply, optional where it is.

No server: the document is read from the package (``openapi.yaml``), so a drift
between the API and the hand-written dataclasses fails here first.
"""

from __future__ import annotations

import dataclasses
import itertools
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from sandkasten import _models
from sandkasten._models import (
    CodeError,
    CodeResult,
    ExecResult,
    FileEntry,
    ProcessEvent,
    ProcessInfo,
    ProcessResult,
    RichResult,
    SessionInfo,
    Snapshot,
    WorkspaceInfo,
)
from sandkasten_server.schema import openapi

# Each model, the schema it mirrors, and how the clients build it from a reply.
MODELS: dict[type[Any], tuple[str, Callable[[dict[str, Any]], Any]]] = {
    ExecResult: ("ExecResult", ExecResult.from_json),
    CodeResult: ("CodeResult", CodeResult.from_json),
    RichResult: ("RichResult", lambda data: CodeResult.from_json(_code_result_with(data)).results[0]),
    CodeError: ("CodeError", lambda data: CodeResult.from_json(_code_result_with(error=data)).error),
    FileEntry: ("Entry", lambda data: FileEntry(**data)),
    SessionInfo: ("Session", SessionInfo.from_json),
    WorkspaceInfo: ("Workspace", lambda data: WorkspaceInfo(**data)),
    Snapshot: ("Snapshot", Snapshot.from_json),
    ProcessInfo: ("Process", ProcessInfo.from_json),
    ProcessResult: ("ProcessWaitResult", ProcessResult.from_json),
    ProcessEvent: ("ProcessEvent", ProcessEvent.from_json),
}
# Fields only the SDK has.
SDK_ONLY = {SessionInfo: {"raw"}}
# Properties the SDK leaves in ``SessionInfo.raw``: the kernel's model (its id is ``kernel_id``), and usage,
# which the API sends only for ``?usage=true`` (the SDK does not ask).
NOT_MODELLED = {"Session": {"kernel", "usage"}}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = openapi()["components"]["schemas"]
    return schemas


def _code_result_with(rich: dict[str, Any] | None = None, error: dict[str, Any] | None = None) -> dict[str, Any]:
    """The smallest CodeResult reply that carries ``rich`` or ``error``."""
    return {"stdout": "", "stderr": "", "results": [rich] if rich else [], "error": error}


def _sample(schema: dict[str, Any], full: bool, counter: Iterator[int]) -> Any:
    """A value that matches ``schema``: every property (``full``), or only the required ones.

    Values differ from each other and from the SDK's defaults, so a field read from the wrong key, or not read
    at all, shows.
    """
    if "$ref" in schema:
        return _sample(_schemas()[schema["$ref"].rsplit("/", 1)[1]], full, counter)
    if "oneOf" in schema:
        return _sample(next(s for s in schema["oneOf"] if s.get("type") != "null"), full, counter)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    n = next(counter)
    if kind == "object":
        properties = schema.get("properties")
        if properties is None:
            values = schema.get("additionalProperties")
            return {"key%d" % n: _sample(values, full, counter) if isinstance(values, dict) else n}
        names = properties if full else schema.get("required", [])
        return {name: _sample(properties[name], full, counter) for name in names}
    if kind == "array":
        return [_sample(schema.get("items", {}), full, counter)]
    n += schema.get("minimum", 0)  # e.g. Limits' (a snapshot's limits are a Limits)
    return {"string": "text%d" % n, "integer": n, "number": n + 0.5, "boolean": True}[kind]


def _reply(model: type[Any], full: bool) -> dict[str, Any]:
    name = MODELS[model][0]
    reply: dict[str, Any] = _sample(_schemas()[name], full, itertools.count(1))
    if model is SessionInfo and full:
        reply["kernel"]["id"] = reply["kernel_id"]  # the server sends the same id in both
    schema = {"$ref": "#/components/schemas/%s" % name, "components": openapi()["components"]}
    jsonschema.Draft202012Validator(schema).validate(reply)  # the sample is a reply the server may send
    return reply


def _nullable(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (isinstance(kind, list) and "null" in kind) or any(s.get("type") == "null" for s in schema.get("oneOf", []))


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def test_every_model_is_checked() -> None:
    defined = {
        cls
        for cls in vars(_models).values()
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls.__module__ == _models.__name__
    }
    assert defined == set(MODELS), "map each model of sandkasten._models to its OpenAPI schema in MODELS"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_the_fields_are_the_schemas_properties(model: type[Any]) -> None:
    name = MODELS[model][0]
    fields = {f.name for f in dataclasses.fields(model)} - SDK_ONLY.get(model, set())
    properties = set(_schemas()[name]["properties"]) - NOT_MODELLED.get(name, set())
    assert fields - properties == set(), "%s has fields the API does not send" % model.__name__
    assert properties - fields == set(), "%s lacks fields the API sends" % model.__name__


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_field_is_read_from_the_reply(model: type[Any]) -> None:
    reply = _reply(model, full=True)
    parsed = dataclasses.asdict(MODELS[model][1](reply))
    for field in set(parsed) - SDK_ONLY.get(model, set()):
        assert parsed[field] == reply[field], "%s.%s is not read from the reply" % (model.__name__, field)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_only_the_required_properties_are_required(model: type[Any]) -> None:
    # A reply with only the required properties must parse: the SDK may not need what the API may leave out.
    # (The reverse is allowed: the SDK reads some required properties leniently, with a default.)
    MODELS[model][1](_reply(model, full=False))


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_nullable_properties_may_be_none(model: type[Any]) -> None:
    properties = _schemas()[MODELS[model][0]]["properties"]
    hints = typing.get_type_hints(model)
    for field in dataclasses.fields(model):
        if field.name in properties and _nullable(properties[field.name]):
            assert _allows_none(hints[field.name]), "%s.%s may be null" % (model.__name__, field.name)
