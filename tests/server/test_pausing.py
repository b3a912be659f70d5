"""Pause and resume through the REST API: every runner route refused while paused, state intact after."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.server.conftest import Api, Reply

pytestmark = pytest.mark.docker


def paused_error(reply: Reply) -> bool:
    return reply.status == 409 and reply.json["error"] == "session_paused"


def test_a_paused_session_refuses_every_runner_call_and_resumes_as_it_was(api: Api, jp_ws_fetch: Any) -> None:
    session_id = api.session()
    api.exec(session_id, "cd /tmp && export KEPT=yes; sleep 600 >/dev/null 2>&1 &")
    assert api.post("sessions/%s/run_code" % session_id, {"code": "x = 42"}).status == 200

    paused = api.post("sessions/%s/pause" % session_id)
    assert paused.status == 200, paused.body
    assert paused.json["status"] == "paused" and paused.json["paused_at"] > 0 and paused.json["kernel"]
    assert api.post("sessions/%s/pause" % session_id).status == 200  # twice is fine
    sessions = api.get("sessions", params={"usage": "true"}).json["sessions"]
    (listed,) = [s for s in sessions if s["id"] == session_id]
    assert listed["status"] == "paused" and listed["usage"]["paused"] and listed["usage"]["memory_bytes"] > 0
    kernel = api.get("sessions/%s/kernel" % session_id).json
    assert kernel["alive"] and kernel["paused"]

    base = "sessions/%s/" % session_id
    refused = [
        api.post(base + "exec", {"command": "true"}),
        api.post(base + "exec", {"command": "true", "stream": True}),
        api.post(base + "run_code", {"code": "x"}),
        api.get(base + "files/."),
        api.put(base + "files/a.txt", "data"),
        api.delete(base + "files/a.txt"),
        api.get(base + "archive/."),
        api.post(base + "kernel/interrupt"),
    ]
    assert all(paused_error(reply) for reply in refused), [(r.status, r.body) for r in refused]

    async def sockets() -> tuple[Any, Any]:
        exec_socket = await jp_ws_fetch("sandkasten", "api", "sessions", session_id, "exec", "ws")
        exec_socket.write_message(json.dumps({"command": "true"}))
        event = json.loads(await asyncio.wait_for(exec_socket.read_message(), 10))
        exec_socket.close()
        terminal = await jp_ws_fetch("sandkasten", "api", "sessions", session_id, "terminal")
        closed = await asyncio.wait_for(terminal.read_message(), 10)
        return event, (closed, terminal.close_code, terminal.close_reason)

    event, terminal = api.run(sockets())
    assert event["error"] == "session_paused"
    assert terminal[0] is None and terminal[1] == 1011 and "paused" in terminal[2]

    resumed = api.post("sessions/%s/resume" % session_id)
    assert resumed.status == 200 and resumed.json["status"] == "running" and resumed.json["paused_at"] is None
    assert resumed.json["paused_s"] > 0
    assert api.exec(session_id, "pwd; echo $KEPT; jobs | wc -l")["output"] == "/tmp\nyes\n1\n"
    assert api.post("sessions/%s/run_code" % session_id, {"code": "x"}).json["results"][0]["data"]["text/plain"] == "42"
    kinds = [e["kind"] for e in api.get("events", params={"session_id": session_id}).json["events"]]
    assert kinds[:2] == ["resumed", "paused"]


def test_a_pause_is_refused_while_calls_are_under_way(api: Api) -> None:
    session_id = api.session()
    assert api.post("sessions/%s/run_code" % session_id, {"code": "import time"}).status == 200

    def pause_during(path: str, body: dict[str, Any]) -> Reply:
        async def both() -> Reply:
            work = asyncio.ensure_future(api.fetch("sandkasten", "api", path, method="POST", body=json.dumps(body)))
            await asyncio.sleep(0.4)
            reply = await api.fetch(
                "sandkasten", "api", "sessions", session_id, "pause", method="POST", body=b"", raise_error=False
            )
            assert (await work).code == 200
            return Reply(reply.code, reply.headers, reply.body)

        return api.run(both())

    for path, body in (("exec", {"command": "sleep 1.5"}), ("run_code", {"code": "time.sleep(1.5)"})):
        busy = pause_during("sessions/%s/%s" % (session_id, path), body)
        assert (busy.status, busy.json["error"]) == (409, "session_busy"), path
    assert api.post("sessions/%s/pause" % session_id).status == 200
    assert api.delete("sessions/%s" % session_id).status == 204  # a paused session is destroyed as any other
    assert api.get("sessions/%s" % session_id).status == 404
