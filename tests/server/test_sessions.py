"""Sessions through the REST API: the quickstart, state across execs, auth, bad input and quotas."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from sandkasten_server.handlers import default_handlers
from tests.server.conftest import Api

pytestmark = pytest.mark.docker

METHODS = ("get", "post", "put", "delete")


def concrete(pattern: str) -> str:
    """A URL path for a route pattern, with made-up ids."""
    path = pattern.removeprefix("/sandkasten/api/")
    path = re.sub(r"\(\?P<session_id>[^)]*\)", "nope", path)
    path = re.sub(r"\(\?P<name>[^)]*\)", "some-ws", path)
    path = re.sub(r"\(\?:/\(\?P<path>\.\*\)\)\?", "/a.txt", path)
    path = path.replace("(?:/.*)?", "/no/such/route")
    return path.replace("/?", "")


def routes() -> list[tuple[str, str]]:
    found = []
    for pattern, handler in default_handlers:
        for method in METHODS:
            if method in vars(handler) or any(method in vars(base) for base in handler.__mro__[1:3]):
                found.append((method.upper(), concrete(pattern)))
    return found


def test_every_route_needs_the_token(api: Api) -> None:
    checked = routes()
    assert len(checked) >= 20
    for method, path in checked:
        if path.endswith("exec/ws"):
            continue  # a websocket: tests/server/test_exec.py checks it
        for headers in ({"Authorization": ""}, {"Authorization": "token wrong"}):
            reply = api.call(method, path, b"{}" if method in ("POST", "PUT") else None, headers=headers)
            assert (reply.status, reply.json["error"]) == (401, "unauthorized"), (method, path, reply.body)
            assert reply.headers["WWW-Authenticate"] == "token"


def test_the_quickstart_flow(api: Api) -> None:
    api.wait_warm()
    created = api.post("sessions", {})
    assert created.status == 201
    session = created.json
    assert session["warm"] and session["owner"] == "local" and session["image"] == "sandkasten/runtime:python"

    written = api.put("sessions/%s/files/hello.py" % session["id"], "print('Hello from sandbox!')")
    assert written.status == 201 and written.json == {"path": "hello.py", "size": 28}
    result = api.exec(session["id"], "python3 hello.py")
    assert result["output"] == "Hello from sandbox!\n"
    assert result["exit_code"] == 0 and not result["timed_out"] and not result["truncated"]
    assert result["duration_ms"] > 0
    assert api.get("sessions/%s/files/hello.py" % session["id"]).body == b"print('Hello from sandbox!')"

    listed = api.get("sessions").json["sessions"]
    assert [s["id"] for s in listed] == [session["id"]]
    assert api.get("sessions/%s" % session["id"]).json["exec_count"] == 1

    assert api.delete("sessions/%s" % session["id"]).status == 204
    gone = api.get("sessions/%s" % session["id"])
    assert gone.status == 404 and gone.json["error"] == "not_found"
    assert api.post("sessions/%s/exec" % session["id"], {"command": "true"}).status == 404


def test_state_persists_across_execs(api: Api) -> None:
    session_id = api.session()
    api.exec(session_id, "cd /tmp && export A=1")
    assert api.exec(session_id, "pwd; echo $A")["output"] == "/tmp\n1\n"
    api.exec(session_id, "(sleep 300 &) ; echo started")
    api.exec(
        session_id, "nohup bash -c 'while true; do date +%s%N >> /workspace/ticks; sleep 0.1; done' >/dev/null 2>&1 &"
    )
    first = api.exec(session_id, "sleep 0.5; wc -l < /workspace/ticks")["output"]
    second = api.exec(session_id, "sleep 0.5; wc -l < /workspace/ticks")["output"]
    assert int(second) > int(first) > 0  # the background job kept running between execs
    assert api.exec(session_id, "pgrep -c -x sleep")["output"].strip() != "0"


def test_create_options(api: Api) -> None:
    reply = api.post(
        "sessions",
        {"image": "base", "env": {"GREETING": "hi there"}, "limits": {"memory_mb": 256, "pids": 64}, "ttl_s": 60},
    )
    assert reply.status == 201, reply.body
    session = reply.json
    assert session["image"] == "sandkasten/runtime:base" and session["env"] == ["GREETING"]
    assert session["limits"] == {"cpus": 1.0, "memory_mb": 256, "pids": 64} and session["ttl_s"] == 60
    assert api.exec(
        session["id"], "echo $GREETING; cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max"
    )["output"].split() == ["hi", "there", "64"]


@pytest.mark.parametrize(
    ("body", "status", "error", "names"),
    [
        (b"{not json", 400, "bad_request", "not valid JSON"),
        ({"imagee": "python"}, 400, "bad_request", "imagee"),
        ({"image": 3}, 400, "bad_request", "field 'image'"),
        ({"limits": {"cpus": -1}}, 400, "bad_request", "field 'limits.cpus'"),
        ({"limits": {"cpus": 5e-324}}, 400, "bad_request", "field 'limits.cpus'"),
        ({"limits": {"memory_mb": 999999}}, 400, "limit_exceeded", "memory_mb"),
        ({"env": {"1BAD": "x"}}, 400, "bad_request", "field 'env'"),
        ({"workspace": "../etc"}, 400, "bad_request", "field 'workspace'"),
        ({"image": "ubuntu:latest"}, 400, "bad_config", "not allowed"),
        ({"network": True}, 403, "not_allowed", "allow_network"),
        ({"ttl_s": 10**9}, 400, "limit_exceeded", "ttl_s"),
        ([1, 2], 400, "bad_request", "the body"),
    ],
)
def test_bad_create_requests(api: Api, body: Any, status: int, error: str, names: str) -> None:
    reply = api.post("sessions", body)
    assert (reply.status, reply.json["error"]) == (status, error), reply.body
    assert names in reply.json["message"]
    assert api.get("sessions").json["sessions"] == []


def test_errors_are_json_with_the_right_status(api: Api) -> None:
    for method, path, status in [
        ("GET", "sessions/nope", 404),
        ("DELETE", "sessions/nope", 404),
        ("POST", "sessions/nope/exec", 404),
        ("GET", "no/such/route", 404),
        ("PATCH", "sessions", 405),
    ]:
        reply = api.call(method, path, b"" if method in ("POST", "PATCH") else None)
        assert reply.status == status, (method, path, reply.body)
        assert set(reply.json) == {"error", "message"}
        assert "Traceback" not in reply.json["message"]


def test_the_body_size_limit(api: Api) -> None:
    session_id = api.session()
    reply = api.put("sessions/%s/files/big.bin" % session_id, b"x" * (9 << 20))  # quota.max_body_mb is 8
    assert reply.status == 413 and reply.json["error"] == "too_large"


def test_per_user_quota(api: Api) -> None:
    made = [api.session(image="base") for _ in range(6)]  # quota.max_sessions_per_user is 6
    reply = api.post("sessions", {"image": "base"})
    assert reply.status == 429 and reply.json["error"] == "quota_exceeded"
    api.delete("sessions/%s" % made[0])
    assert api.post("sessions", {"image": "base"}).status == 201


def test_pool_exhausted_beyond_the_cold_start_limit(api: Api) -> None:
    api.service.settings.quota.max_cold_starts = 1
    api.service.settings.quota.cold_start_wait_s = 0.1

    async def two_cold_starts() -> list[Any]:
        body = {"limits": {"memory_mb": 300}}  # other limits than the pool's: both start cold
        calls = [
            api.fetch("sandkasten/api/sessions", method="POST", body=json.dumps(body), raise_error=False)
            for _ in range(2)
        ]
        return list(await asyncio.gather(*calls))

    replies = api.run(two_cold_starts())
    assert sorted(r.code for r in replies) == [201, 503]
    refused = next(r for r in replies if r.code == 503)
    assert refused.headers["Retry-After"] == "1"
