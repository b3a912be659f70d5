"""Processes beside the shell through the API: start, follow, wait, stdin, signals, and exec if_busy."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from traitlets.config import Config

from tests.server.conftest import Api, Reply
from tests.server.test_terminal import UserFromHeader, as_user

pytestmark = pytest.mark.docker


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    jp_server_config.ServerApp.identity_provider_class = UserFromHeader
    return jp_server_config


class Carol(Api):
    """The api as one person (the identity provider names a new user per request otherwise)."""

    def __init__(self, api: Api) -> None:
        super().__init__(api.loop, api.fetch, api.service)

    def call(self, method: str, path: str, body: Any = None, token: bool = True, **options: Any) -> Any:
        options["headers"] = {**as_user("carol"), **options.get("headers", {})}
        return super().call(method, path, body, token, **options)


def events_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines() if line]


def test_a_process_with_stdin_stdout_and_stderr_apart(api: Api) -> None:
    api = Carol(api)
    session_id = api.session()
    base = "sessions/%s/processes" % session_id
    started = api.post(base, {"command": "echo out; echo err >&2; read line; echo got $line", "stdin": True})
    assert started.status == 201, started.body
    process = started.json
    assert process["running"] and process["stdin_open"] and process["cwd"] == "/workspace"
    pid = process["pid"]
    assert pid in [entry["pid"] for entry in api.get(base).json["processes"]]

    fed = api.post("%s/%d/stdin" % (base, pid), {"data": "hi\n", "eof": True})
    assert fed.status == 200 and not fed.json["stdin_open"]
    waited = api.post("%s/%d/wait" % (base, pid), {"timeout_ms": 20000})
    assert waited.status == 200, waited.body
    assert waited.json["stdout"] == "out\ngot hi\n" and waited.json["stderr"] == "err\n"
    assert waited.json["process"]["exit_code"] == 0 and not waited.json["process"]["running"]
    assert not api.get("%s/%d" % (base, pid)).json["running"]

    # Its events, from any point: all it kept, or only what came after a sequence number.
    events = events_of(api.get("%s/%d/events" % (base, pid)).body)
    assert events[-1]["type"] == "exit" and events[-1]["process"]["exit_code"] == 0
    outputs = [event for event in events if event["type"] == "output"]
    assert "".join(e["data"] for e in outputs if e["stream"] == "stdout") == "out\ngot hi\n"
    later = events_of(api.get("%s/%d/events" % (base, pid), params={"after": str(outputs[0]["seq"])}).body)
    assert [e for e in later if e["type"] == "output"] == outputs[1:]

    refused = api.post("%s/%d/stdin" % (base, pid), {"data": "more"})
    assert refused.status == 409 and refused.json["error"] == "stdin_closed"


def test_a_streamed_start_a_background_process_and_signals(api: Api) -> None:
    api = Carol(api)
    session_id = api.session()
    base = "sessions/%s/processes" % session_id
    streamed = api.post(base, {"command": "echo one; echo two >&2; exit 5", "stream": True, "env": {"X": "1"}})
    assert streamed.status == 200 and streamed.headers["Content-Type"] == "application/x-ndjson"
    events = events_of(streamed.body)
    assert events[0]["type"] == "started" and events[-1]["type"] == "exit"
    assert events[-1]["process"]["exit_code"] == 5
    outputs = {(e["stream"], e["data"]) for e in events if e["type"] == "output"}
    assert outputs == {("stdout", "one\n"), ("stderr", "two\n")}

    trapped = api.post(base, {"command": "trap 'echo bye; exit 3' TERM; while :; do sleep 0.05; done"}).json
    time.sleep(0.5)
    assert api.post("%s/%d/signal" % (base, trapped["pid"]), {"signal": "SIGTERM"}).status == 200
    waited = api.post("%s/%d/wait" % (base, trapped["pid"]), {"timeout_ms": 10000}).json
    assert waited["process"]["exit_code"] == 3 and waited["stdout"] == "bye\n"

    forever = api.post(base, {"command": "sleep 600", "tag": "server"}).json
    assert forever["tag"] == "server"
    still = api.post("%s/%d/wait" % (base, forever["pid"]), {"timeout_ms": 200}).json
    assert still["process"]["running"]
    assert api.delete("%s/%d" % (base, forever["pid"])).status == 200
    killed = api.post("%s/%d/wait" % (base, forever["pid"]), {"timeout_ms": 10000}).json
    assert killed["process"]["exit_code"] == -9

    timed = api.post(base, {"command": "sleep 30", "timeout_ms": 300}).json
    ended = api.post("%s/%d/wait" % (base, timed["pid"])).json
    assert ended["process"]["timed_out"]


def test_exec_beside_a_busy_shell(api: Api) -> None:
    api = Carol(api)
    session_id = api.session()
    path = "sandkasten/api/sessions/%s/exec" % session_id

    async def exec_both() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async def call(body: dict[str, Any]) -> dict[str, Any]:
            response = await api.fetch(
                path, method="POST", body=json.dumps(body), raise_error=False, headers=as_user("carol")
            )
            return {"status": response.code, **json.loads(response.body)}

        slow = asyncio.ensure_future(call({"command": "sleep 2; echo slow"}))
        await asyncio.sleep(0.5)
        quick = await asyncio.gather(
            call({"command": "echo beside-$((1+1))", "if_busy": "process"}),
            call({"command": "echo refused"}),
        )
        return await slow, list(quick)

    slow, (beside, refused) = api.run(exec_both())
    assert slow["status"] == 200 and slow["output"] == "slow\n" and slow["ran_as"] == "shell"
    assert beside["status"] == 200 and beside["output"] == "beside-2\n" and beside["ran_as"] == "process"
    assert refused["status"] == 409 and refused["error"] == "shell_busy"


def test_bad_requests_and_other_users(api: Api) -> None:
    alice = as_user("alice")
    reply = api.post("sessions", {}, headers=alice)
    assert reply.status == 201, reply.body
    base = "sessions/%s/processes" % reply.json["id"]
    pid = api.post(base, {"command": "sleep 30"}, headers=alice).json["pid"]
    for path in ("%s/abc" % base, "%s/999999" % base, "%s/abc/wait" % base):
        method = api.post if path.endswith("wait") else api.get
        missing = method(path, headers=alice)
        assert missing.status == 404 and missing.json["error"] == "not_found", path
    for body in ({}, {"command": ""}, {"command": "true", "env": {"1X": "y"}}, {"command": "true", "nope": 1}):
        assert api.post(base, body, headers=alice).status == 400, body
    assert api.post(base, {"command": "true", "cwd": "/nowhere"}, headers=alice).status == 404
    assert api.post("%s/%d/signal" % (base, pid), {"signal": "SIGNOPE"}, headers=alice).status == 400
    assert api.post("%s/%d/signal" % (base, pid), {"signal": 0}, headers=alice).status == 400
    assert api.get("%s/%d/events" % (base, pid), params={"after": "x"}, headers=alice).status == 400
    assert api.post("%s/%d/stdin" % (base, pid), {"data": "x"}, headers=alice).status == 409

    bob = as_user("bob")
    calls: list[Callable[[], Reply]] = [
        lambda: api.get(base, headers=bob),
        lambda: api.post(base, {"command": "id"}, headers=bob),
        lambda: api.get("%s/%d" % (base, pid), headers=bob),
        lambda: api.delete("%s/%d" % (base, pid), headers=bob),
        lambda: api.post("%s/%d/stdin" % (base, pid), {"data": "x"}, headers=bob),
        lambda: api.get("%s/%d/events" % (base, pid), headers=bob),
    ]
    for call in calls:
        assert call().status == 404
    assert api.get("%s/%d" % (base, pid), headers=alice).json["running"]
    api.delete("%s/%d" % (base, pid), headers=alice)
