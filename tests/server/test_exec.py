"""Exec through the API: the timeout contract, streaming (NDJSON, SSE, websocket)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.server.conftest import Api

pytestmark = pytest.mark.docker

SLOW = "echo first; sleep 2; echo second"


def test_timeout_keeps_the_shell_and_returns_partial_output(api: Api) -> None:
    session_id = api.session()
    api.exec(session_id, "cd /tmp && export KEPT=yes")
    result = api.exec(session_id, "echo partial; sleep 30; echo never", timeout_ms=700)
    assert result["timed_out"] and result["exit_code"] is None
    assert result["output"] == "partial\n"
    assert result["duration_ms"] < 5000
    assert api.exec(session_id, "pwd; echo $KEPT")["output"] == "/tmp\nyes\n"


def test_exec_options(api: Api) -> None:
    session_id = api.session()
    result = api.exec(session_id, "pwd; echo $ONE; cat", cwd="/tmp", env={"ONE": "1"}, stdin="from stdin")
    assert result["output"] == "/tmp\n1\nfrom stdin"
    capped = api.exec(session_id, "head -c 5000 /dev/zero | tr '\\0' x", max_output=100)
    assert capped["truncated"] and len(capped["output"]) == 100 and capped["output_bytes"] == 5000
    assert api.exec(session_id, "exit 3")["shell_restarted"]
    assert api.exec(session_id, "false")["exit_code"] == 1


def stream(api: Api, session_id: str, command: str, accept: str = "") -> tuple[list[tuple[float, bytes]], float]:
    """POST a streamed exec; return (seconds after the request, chunk) per chunk, and the total time."""
    chunks: list[tuple[float, bytes]] = []
    started = time.monotonic()
    api.run(
        api.fetch(
            "sandkasten", "api", "sessions", session_id, "exec",
            method="POST",
            body=json.dumps({"command": command, "stream": True}),
            headers={"Accept": accept} if accept else {},
            streaming_callback=lambda chunk: chunks.append((time.monotonic() - started, chunk)),
            request_timeout=60,
        )
    )  # fmt: skip
    return chunks, time.monotonic() - started


def test_ndjson_stream_delivers_the_first_chunk_before_the_command_ends(api: Api) -> None:
    session_id = api.session()
    chunks, total = stream(api, session_id, SLOW)
    assert total >= 2
    assert chunks[0][0] < 1.5, chunks  # "first" came while the command still slept
    events = [json.loads(line) for line in b"".join(c for _, c in chunks).splitlines()]
    assert [e["type"] for e in events] == ["output", "output", "result"]
    assert "".join(e["data"] for e in events[:2]) == "first\nsecond\n"
    assert events[-1]["exit_code"] == 0 and "output" not in events[-1]


def test_sse_stream(api: Api) -> None:
    session_id = api.session()
    chunks, _ = stream(api, session_id, SLOW, accept="text/event-stream")
    assert chunks[0][0] < 1.5
    text = b"".join(c for _, c in chunks).decode()
    blocks = [block for block in text.split("\n\n") if block]
    assert blocks[0] == 'event: output\ndata: {"type": "output", "data": "first\\n"}'
    assert blocks[-1].startswith("event: result\ndata: ")


def test_stream_errors_before_output_keep_their_status(api: Api) -> None:
    reply = api.post("sessions/nope/exec", {"command": "true", "stream": True})
    assert reply.status == 404 and reply.json["error"] == "not_found"


async def ws_exec(socket: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    await socket.write_message(json.dumps(request))
    events: list[dict[str, Any]] = []
    while not events or events[-1]["type"] not in ("result", "error"):
        events.append(json.loads(await socket.read_message()))
    return events


def test_exec_over_a_websocket(api: Api, jp_ws_fetch: Any) -> None:
    session_id = api.session()

    async def scenario() -> None:
        socket = await jp_ws_fetch("sandkasten", "api", "sessions", session_id, "exec", "ws")
        events = await ws_exec(socket, {"command": "export W=1; echo one; sleep 0.2; echo two"})
        assert [e["type"] for e in events][-1] == "result" and events[-1]["exit_code"] == 0
        assert "".join(e.get("data", "") for e in events) == "one\ntwo\n"
        again = await ws_exec(socket, {"command": "echo $W"})  # the same shell
        assert again[0] == {"type": "output", "data": "1\n"}
        bad = await ws_exec(socket, {"command": 7})
        assert bad[-1]["error"] == "bad_request" and "command" in bad[-1]["message"]
        socket.close()

    api.run(scenario())


def test_the_websocket_needs_the_token(api: Api, jp_ws_fetch: Any) -> None:
    session_id = api.session()
    with pytest.raises(HTTPClientError) as refused:
        api.run(jp_ws_fetch("sandkasten", "api", "sessions", session_id, "exec", "ws", headers={"Authorization": ""}))
    assert refused.value.code in (401, 403)
    with pytest.raises(HTTPClientError) as unknown:
        api.run(jp_ws_fetch("sandkasten", "api", "sessions", "nope", "exec", "ws"))
    assert unknown.value.code == 404
