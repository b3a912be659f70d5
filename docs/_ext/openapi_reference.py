"""The REST API reference as MyST Markdown, from ``openapi.yaml``: every operation, then every schema.

The server validates requests against the same document, so the page cannot drift from what it accepts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

OPENAPI = Path(__file__).resolve().parents[2] / "server_extension" / "sandkasten_server" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")

Schema = dict[str, Any]


def reference(path: Path = OPENAPI) -> str:
    """The routes and schemas of the OpenAPI document at ``path``, as Markdown (``##`` headings down)."""
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    lines = ["## Routes", ""]
    for route, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                lines += _operation(document, method, route, item[method], shared)
    lines += ["## Schemas", "", "The bodies the routes above take and give, by name.", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += _schema(name, schema)
    return "\n".join(lines)


def schema_label(name: str) -> str:
    """The reference target of a schema's section (Sphinx folds labels to lower case)."""
    return "api-schema-" + name.lower()


def _operation(document: Schema, method: str, route: str, operation: Schema, shared: list[Schema]) -> list[str]:
    lines = ["### `%s %s`" % (method.upper(), route), ""]
    lines += ["`%s`: %s" % (operation["operationId"], operation.get("summary", "")), ""]
    if "description" in operation:
        lines += [operation["description"].strip(), ""]
    parameters = [_resolve(document, p) for p in [*shared, *operation.get("parameters", [])]]
    if parameters:
        lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for p in parameters:
            required = "yes" if p.get("required") else "no"
            row = ("`%s`" % p["name"], p["in"], _type(p.get("schema", {})), required, p.get("description", ""))
            lines.append(_row(row))
        lines.append("")
    if "requestBody" in operation:
        body = _resolve(document, operation["requestBody"])
        required = "required" if body.get("required") else "optional"
        lines += ["Request body (%s): %s" % (required, _content(body.get("content", {}))), ""]
    lines += ["| response | description | body |", "|---|---|---|"]
    for status, response in operation["responses"].items():
        response = _resolve(document, response)
        lines.append(_row((status, response.get("description", ""), _content(response.get("content", {})))))
    return [*lines, ""]


def _schema(name: str, schema: Schema) -> list[str]:
    lines = ["(%s)=" % schema_label(name), "### `%s`" % name, ""]
    if "description" in schema:
        lines += [_one_line(schema["description"]), ""]
    properties: dict[str, Schema] = schema.get("properties", {})
    if not properties:
        return [*lines, _type(schema), ""]
    required = set(schema.get("required", []))
    lines += ["| property | type | required | description |", "|---|---|---|---|"]
    for key, prop in properties.items():
        lines.append(_row(("`%s`" % key, _type(prop), "yes" if key in required else "no", prop.get("description", ""))))
    return [*lines, ""]


def _content(content: dict[str, Schema]) -> str:
    """``media/type``: the schema of each media type a body may have."""
    return "; ".join("`%s`: %s" % (media, _type(entry.get("schema", {}))) for media, entry in content.items())


def _type(schema: Schema) -> str:
    """A schema in a few words: a named schema is a link to its section."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return "{ref}`%s <%s>`" % (name, schema_label(name))
    for combined in ("oneOf", "anyOf"):
        if combined in schema:
            return " or ".join(_type(option) for option in schema[combined])
    kinds = schema.get("type", [])
    words = [_kind(kind, schema) for kind in ([kinds] if isinstance(kinds, str) else kinds)]
    text = " or ".join(words) or "any"
    if "enum" in schema:
        text += ": " + ", ".join("`%s`" % value for value in schema["enum"])
    if "default" in schema:
        text += " (default `%s`)" % json.dumps(schema["default"])
    return text


def _kind(kind: str, schema: Schema) -> str:
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and "properties" in schema:
        return "object with " + ", ".join("`%s` (%s)" % (k, _type(v)) for k, v in schema["properties"].items())
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "map of " + _type(schema["additionalProperties"])
    if kind == "string" and schema.get("format") == "binary":
        return "bytes"
    return str(kind)


def _resolve(document: Schema, item: Schema) -> Schema:
    """``item``, or what its local ``$ref`` (``#/components/...``) points to."""
    if "$ref" not in item:
        return item
    found: Any = document
    for part in item["$ref"].removeprefix("#/").split("/"):
        found = found[part]
    return dict(found)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _row(cells: tuple[str, ...]) -> str:
    """A Markdown table row: each cell on one line, its pipes escaped."""
    return "| %s |" % " | ".join(_one_line(cell).replace("|", "\\|") for cell in cells)
