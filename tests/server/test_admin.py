"""Server-wide routes: workspaces, pool, config (written back to sandkasten.yaml), health, events, OpenAPI."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.websocket import WebSocketHandler

from sandkasten_server.handlers import default_handlers
from tests.server.conftest import PYTHON, Api

pytestmark = pytest.mark.docker


def test_workspaces(api: Api, docker_client: Any) -> None:
    name = "api-ws-%d" % os.getpid()
    session_id = api.session(workspace=name)
    api.exec(session_id, "echo kept > /workspace/kept.txt")
    (row,) = [w for w in api.get("workspaces").json["workspaces"] if w["name"] == name]
    assert row["in_use_by"] == [session_id]
    refused = api.delete("workspaces/%s" % name)
    assert refused.status == 409 and refused.json["error"] == "workspace_in_use"

    api.delete("sessions/%s" % session_id)
    again = api.session(workspace=name)  # the files outlived the first session
    assert api.exec(again, "cat /workspace/kept.txt")["output"] == "kept\n"
    api.delete("sessions/%s" % again)
    (row,) = [w for w in api.get("workspaces").json["workspaces"] if w["name"] == name]
    assert row["in_use_by"] == [] and row["last_used"] is not None

    assert api.delete("workspaces/%s" % name).status == 204
    missing = api.delete("workspaces/%s" % name)
    assert missing.status == 404 and missing.json["error"] == "not_found"


def test_pool(api: Api) -> None:
    api.wait_warm()
    status = api.get("pool").json
    assert status["enabled"] and status["images"][PYTHON]["target"] == 1 and status["images"][PYTHON]["ready"] == 1
    resized = api.put("pool", {"images": {"python": 0, "base": 1}})
    assert resized.status == 200, resized.body
    assert resized.json["images"][PYTHON]["target"] == 0 and resized.json["images"][PYTHON]["ready"] == 0
    api.wait_warm("sandkasten/runtime:base")
    for body, field in [
        ({"images": {"python": -1}}, "images.python"),
        ({"images": {"python": "2"}}, "images.python"),
        ({"image": {}}, "image"),
    ]:
        reply = api.put("pool", body)
        assert reply.status == 400 and field in reply.json["message"], reply.body
    unknown = api.put("pool", {"images": {"ubuntu": 1}})
    assert unknown.status == 400 and "not allowed" in unknown.json["message"]


def test_a_schedule_changed_through_config_applies_at_once_and_shows_in_the_pool(api: Api) -> None:
    assert api.get("pool").json["schedule"] is None
    every_minute = {"cron": "* * * * *", "images": {"base": 1}}  # it fired this minute: it holds now
    changed = api.put("config", {"pool": {"schedule": [every_minute], "schedule_timezone": "UTC"}})
    assert changed.status == 200 and changed.json["applied"] == ["pool.schedule", "pool.schedule_timezone"]
    pool = api.get("pool").json
    assert pool["images"]["sandkasten/runtime:base"]["target"] == 1
    schedule = pool["schedule"]
    assert schedule["timezone"] == "UTC" and schedule["current"]["images"] == {"base": 1}
    assert schedule["next"]["at"] == schedule["current"]["since"] + 60
    bad = api.put("config", {"pool": {"schedule": [{"cron": "0 9 * * FUNDAY", "images": {}}]}})
    assert bad.status == 400 and "pool.schedule': [0] (cron '0 9 * * FUNDAY')" in bad.json["message"], bad.body


def test_config_view_and_change(api: Api, sandkasten_yaml: Path) -> None:
    view = api.get("config").json
    assert view["path"] == str(sandkasten_yaml) and view["writable"]
    assert view["config"]["api_key"] == "********"  # redacted
    assert view["config"]["pool"]["images"] == {"python": 1}

    # An operator's comments, key order and quoting survive the dashboard's saves.
    commented = "# Our class server.\n" + sandkasten_yaml.read_text().replace(
        "session:\n", "session:  # sessions end with the class\n"
    ).replace("ttl_s: 600", "ttl_s: 600  # ten minutes")
    sandkasten_yaml.write_text(commented)
    change = {"session": {"idle_timeout_s": 120}, "pool": {"images": {"python": 2}}, "listen": "127.0.0.1:9999"}
    changed = api.put("config", change)
    assert changed.status == 200, changed.body
    assert changed.json["applied"] == ["pool.images", "session.idle_timeout_s"]
    assert changed.json["restart_required"] == ["listen"]
    assert api.service.settings.session.idle_timeout_s == 120
    assert api.get("pool").json["images"][PYTHON]["target"] == 2
    on_disk = yaml.safe_load(sandkasten_yaml.read_text())
    assert on_disk["session"] == {"ttl_s": 600, "idle_timeout_s": 120} and on_disk["listen"] == "127.0.0.1:9999"
    assert on_disk["api_key"] == "not-used-by-pytest-jupyter"  # the redacted value never overwrites the key
    written = sandkasten_yaml.read_text()
    assert written.startswith("# Our class server.\n")
    assert "session:  # sessions end with the class\n" in written and "ttl_s: 600  # ten minutes\n" in written
    assert list(on_disk) == [*list(yaml.safe_load(commented)), "listen"]  # new keys go last, the rest keep their order

    before = sandkasten_yaml.read_text()
    for body, names in [
        ({"session": {"ttl_s": -5}}, "session.ttl_s"),
        ({"pool": {"imagez": {}}}, "pool.imagez"),
        ({"nonsense": 1}, "nonsense"),
        ([1], "JSON object"),
    ]:
        reply = api.put("config", body)
        assert reply.status == 400 and names in reply.json["message"], reply.body
    assert sandkasten_yaml.read_text() == before  # a refused change writes nothing


def test_health_and_events(api: Api) -> None:
    api.wait_warm()
    health = api.get("health")
    assert health.status == 200
    assert health.json["status"] == "ok" and health.json["docker"]["ok"] and health.json["store"]["ok"]
    session_id = api.session()
    api.delete("sessions/%s" % session_id)
    events = api.get("events", params={"limit": "10"}).json["events"]
    kinds = [e["kind"] for e in events if e["session_id"] == session_id]
    assert kinds[0] == "destroyed" and "created" in kinds
    mine = api.get("events", params={"session_id": session_id}).json["events"]
    assert {e["session_id"] for e in mine} == {session_id}
    assert api.get("events", params={"limit": "0"}).status == 400
    assert api.get("events", params={"limit": "x"}).status == 400


def test_the_openapi_document_covers_every_route(api: Api) -> None:
    document = api.get("openapi.json").json
    assert document["openapi"].startswith("3.1")
    documented = set(document["paths"])
    for pattern, handler in default_handlers:
        path = pattern.removeprefix("/sandkasten/api")
        if issubclass(handler, WebSocketHandler) or path == "(?:/.*)?":
            continue  # websockets (described in text: exec/ws under exec, terminal under a session) and the JSON 404
        path = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", path)  # (?P<name>[^/]+) -> {name}
        path = path.replace("(?:/(?P<path>.*))?", "/{path}").replace("/?", "")
        assert path in documented, path
