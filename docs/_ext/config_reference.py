"""The configuration reference as MyST Markdown, from the traitlets classes themselves.

Every configurable trait of every ``sandkasten.yaml`` section (``SECTIONS``; the top-level keys
are ``Sandkasten``'s), of the server extension and of the kernel provisioner: its key, type,
default, help and ``c.Class.trait`` spelling. Nothing here is written by hand, so it cannot drift.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traitlets import Bool, Dict, Float, Int, List, TraitType, Unicode
from traitlets.config import Configurable

from sandkasten_kernel.engine.config import SECTIONS, Sandkasten
from sandkasten_kernel.provisioner import SandkastenProvisioner
from sandkasten_server import config_edit
from sandkasten_server.app import SandkastenApp

KINDS: dict[type[TraitType[Any, Any]], str] = {
    Unicode: "string",
    Int: "integer",
    Float: "number",
    Bool: "boolean",
    Dict: "mapping",
    List: "list",
}


@dataclass(frozen=True)
class Group:
    """Classes documented together: a heading, and how each class's keys are spelled."""

    title: str
    intro: str
    sections: list[tuple[str, str, type[Configurable]]]  # (heading, key prefix, class)
    live: frozenset[str] | None = None  # the keys a change through `PUT config` applies to at once


GROUPS = [
    Group(
        "sandkasten.yaml",
        "Each section is a class; a key is `section.key` in the file (the top-level keys have no section).",
        [("Top level", "", Sandkasten), *(("`%s`" % key, key, cls) for key, cls in SECTIONS.items())],
        frozenset(config_edit.LIVE_KEYS),
    ),
    Group(
        "The Jupyter Server extension",
        "Options of the extension itself, for `jupyter_server_config.py` or the command line; not in sandkasten.yaml.",
        [("`SandkastenApp`", "", SandkastenApp)],
    ),
    Group(
        "The kernel provisioner",
        "A kernelspec's `metadata.kernel_provisioner.config` in its `kernel.json` "
        "(`c.SandkastenProvisioner.<key>` in a Jupyter configuration applies where a kernelspec sets none); "
        "sandkasten.yaml caps each.",
        [("`SandkastenProvisioner`", "config", SandkastenProvisioner)],
    ),
]


def sources() -> list[Path]:
    """The files the reference is made from (a change to one rebuilds the page)."""
    classes = {Path(inspect.getfile(cls)) for group in GROUPS for _, _, cls in group.sections}
    return sorted({*classes, Path(inspect.getfile(config_edit))})


def traits(cls: type[Configurable]) -> Iterator[tuple[str, TraitType[Any, Any]]]:
    """The class's own configurable traits, in the order they are defined."""
    own = cls.class_own_traits(config=True)
    yield from sorted(own.items(), key=lambda item: list(vars(cls)).index(item[0]))


def key_name(prefix: str, name: str) -> str:
    """``section.key``, or ``key`` for a top-level one."""
    return "%s.%s" % (prefix, name) if prefix else name


def keys() -> Iterator[tuple[str, type[Configurable], str, TraitType[Any, Any]]]:
    """(key, class, trait name, trait) for every documented trait."""
    for group in GROUPS:
        for _, prefix, cls in group.sections:
            for name, trait in traits(cls):
                yield key_name(prefix, name), cls, name, trait


def lacking_help() -> list[str]:
    """``c.Class.trait`` of every documented trait without help text."""
    return ["c.%s.%s" % (cls.__name__, name) for _, cls, name, trait in keys() if not (trait.help or "").strip()]


def reference() -> str:
    """Every group as Markdown: a ``##`` heading per group, ``###`` per class, ``####`` per key."""
    lines: list[str] = []
    for group in GROUPS:
        lines += ["## %s" % group.title, "", group.intro, ""]
        for heading, prefix, cls in group.sections:
            lines += ["### %s" % heading, ""]
            lines += ["`%s`: %s" % (cls.__name__, inspect.cleandoc(cls.__doc__ or "")), ""]
            for name, trait in traits(cls):
                key = key_name(prefix, name)
                lines += _key(key, cls, name, trait, _applies(group, key))
    return "\n".join(lines)


def _applies(group: Group, key: str) -> list[str]:
    """When a change through ``PUT config`` (or the dashboard) takes effect, for sandkasten.yaml's keys."""
    if group.live is None:
        return []
    return [":applies: %s" % ("at once" if key in group.live else "at the next start")]


def _key(key: str, cls: type[Configurable], name: str, trait: TraitType[Any, Any], applies: list[str]) -> list[str]:
    return [
        "#### `%s`" % key,
        "",
        ":type: %s" % type_name(trait),
        ":default: `%s`" % json.dumps(trait.default()),
        ":traitlets: `c.%s.%s`" % (cls.__name__, name),
        *applies,
        "",
        " ".join((trait.help or "").split()),
        "",
    ]


def type_name(trait: TraitType[Any, Any]) -> str:
    """The trait's type as a YAML user reads it: ``list of string``, ``integer or null``."""
    kind = next((word for cls, word in KINDS.items() if isinstance(trait, cls)), type(trait).__name__)
    element = getattr(trait, "_trait", None)
    if isinstance(trait, List) and element is not None:
        kind += " of " + type_name(element)
    return kind + (" or null" if trait.allow_none else "")
