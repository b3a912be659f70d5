"""``config``: show the effective sandkasten.yaml, and apply a validated change to it.

A change is merged into the file's content, validated as a whole (the error
names the key), written back atomically, and then applied to the running
engine where that is possible. Keys that only take effect at start are listed
as ``restart_required``. The file is edited as a round trip (ruamel.yaml): its
comments, key order and quoting stay, and only the changed values differ.
"""

from __future__ import annotations

import copy
import io
import os
import tempfile
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError
from traitlets.config import Configurable

from sandkasten_kernel.engine import SECTIONS, ConfigError, Engine, Settings, settings_from, yaml_to_config

from .errors import ApiError

REDACTED = "********"
SECRET_KEYS = {"api_key"}
# Keys whose new value reaches the running engine; everything else waits for a restart.
# The defaults' sizes stay with the warm sandboxes already made, so they need one too.
LIVE_KEYS = {
    "defaults.image",
    "defaults.network",
    "defaults.max_cpus",
    "defaults.max_memory_mb",
    "defaults.max_pids",
    "session.ttl_s",
    "session.idle_timeout_s",
    "session.reap_interval_s",
    "workspace.enabled",
    "pool.images",
    "pool.schedule",
    "pool.schedule_timezone",
    "security.allow_network",
    "security.allowed_images",
    "security.admin_users",
    "security.egress",  # the default and bound of sessions made from now on; running ones keep theirs
    "quota.max_sessions",
    "quota.max_sessions_per_user",
    "quota.max_cold_starts",
    "quota.cold_start_wait_s",
    "quota.max_body_mb",
    "quota.max_workspaces_per_user",
    "quota.max_workspaces_total_mb",
}

POOL_KEYS = {"pool.images", "pool.schedule", "pool.schedule_timezone"}  # what the pool's sizes follow


def _section_values(instance: Configurable) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(instance, name)) for name in sorted(instance.class_traits(config=True))}


def effective(settings: Settings) -> dict[str, Any]:
    """The settings in the shape of sandkasten.yaml, secrets redacted."""
    view = _section_values(settings.server)
    for key in SECRET_KEYS:
        if view.get(key):
            view[key] = REDACTED
    for section in SECTIONS:
        view[section] = _section_values(getattr(settings, section))
    return view


def _flatten(change: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for key, value in change.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update({"%s.%s" % (key, option): v for option, v in value.items()})
        else:
            flat[key] = value
    return flat


def _round_trip() -> YAML:
    round_trip = YAML(typ="rt")
    round_trip.preserve_quotes = True
    round_trip.indent(mapping=2, sequence=4, offset=2)
    return round_trip


def _merged(current: CommentedMap, change: dict[str, Any]) -> CommentedMap:
    """``current`` with ``change`` applied in place of the values it names; comments and order stay."""
    merged = copy.deepcopy(current)
    for key, value in change.items():
        if key in SECRET_KEYS and value == REDACTED:
            continue  # the redacted value came back unchanged
        if key in SECTIONS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            for option, option_value in value.items():
                merged[key][option] = option_value
        else:
            merged[key] = value
    return merged


def _plain(data: Any) -> Any:
    """The round-trip tree as plain dicts and lists, for validation."""
    if isinstance(data, dict):
        return {str(key): _plain(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_plain(item) for item in data]
    return data


def _read(path: str) -> CommentedMap:
    try:
        with open(path, encoding="utf-8") as f:
            data = _round_trip().load(f)
    except FileNotFoundError:
        return CommentedMap()
    except (OSError, YAMLError) as exc:
        raise ApiError(409, "config_unreadable", "%s cannot be read: %s" % (path, exc)) from None
    if data is None:
        return CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ApiError(409, "config_unreadable", "%s does not hold a mapping" % path)
    return data


def _write(path: str, data: CommentedMap) -> None:
    text = io.StringIO()
    _round_trip().dump(data, text)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".sandkasten-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text.getvalue())
        if os.path.exists(path):
            os.chmod(temporary, os.stat(path).st_mode & 0o777)
        os.replace(temporary, path)
    except OSError as exc:
        os.unlink(temporary)
        raise ApiError(409, "config_unwritable", "%s cannot be written: %s" % (path, exc.strerror or exc)) from None


async def change(path: str | None, settings: Settings, engine: Engine | None, body: dict[str, Any]) -> dict[str, Any]:
    """Validate ``body`` against the file, write it, apply what can be applied now."""
    if path is None:
        raise ApiError(409, "no_config_file", "the server runs without a sandkasten.yaml; there is nothing to write")
    current = _read(path)
    merged = _merged(current, body)
    try:
        validated = settings_from(yaml_to_config(_plain(merged), "the change"), "the change")
    except ConfigError as exc:
        raise ApiError(400, "bad_config", str(exc)) from None
    _write(path, merged)

    applied, restart = [], []
    for key in sorted(_flatten(body)):
        if key in SECRET_KEYS and body.get(key) == REDACTED:
            continue
        section, _, option = key.rpartition(".")
        target = getattr(settings, section) if section else settings.server
        source = getattr(validated, section) if section else validated.server
        if key not in LIVE_KEYS:
            restart.append(key)
            continue
        setattr(target, option, getattr(source, option))
        applied.append(key)
    if engine is not None and POOL_KEYS & set(applied):
        await engine.pool_schedule.reload()  # the sizes that hold now; images no longer named go to 0
    return {"path": path, "config": effective(settings), "applied": applied, "restart_required": restart}
