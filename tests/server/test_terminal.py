"""The terminal websocket (sessions/{id}/terminal) and the sessions' usage, in a real Jupyter Server.

Users come from an identity provider here (the X-Test-User header names the
person behind the token, as JupyterHub would), so a second user can be
refused a terminal into the first one's session.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from typing import Any

import pytest
from jupyter_server.auth.identity import IdentityProvider, User
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from tests.server.conftest import Api

pytestmark = pytest.mark.docker


class UserFromHeader(IdentityProvider):
    """The token lets a request in; the X-Test-User header says which person sent it."""

    async def get_user(self, handler: Any) -> User | None:
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        name = handler.request.headers.get("X-Test-User")
        return User(username=name) if user is not None and name else user


@pytest.fixture
def jp_server_config(jp_server_config: Config) -> Config:
    jp_server_config.ServerApp.identity_provider_class = UserFromHeader
    return jp_server_config


def as_user(name: str) -> dict[str, str]:
    return {"X-Test-User": name}


async def read_until(socket: Any, needle: str, timeout: float = 20.0) -> str:
    """The terminal's output until ``needle`` shows (the terminal echoes input: look for output only)."""
    seen = ""

    async def collect() -> None:
        nonlocal seen
        while needle not in seen:
            message = await socket.read_message()
            assert message is not None, "the socket closed: %r" % seen[-500:]
            kind, *rest = json.loads(message)
            if kind == "stdout":
                seen += rest[0]
            elif kind == "disconnect":
                raise AssertionError("the terminal ended: %r" % seen[-500:])

    await asyncio.wait_for(collect(), timeout)
    return seen


def test_a_terminal_into_the_sandbox_and_what_closing_it_does(api: Api, jp_ws_fetch: Any) -> None:
    alice = as_user("alice")
    reply = api.post("sessions", {}, headers=alice)
    assert reply.status == 201, reply.body
    session_id = reply.json["id"]
    assert api.post("sessions/%s/exec" % session_id, {"command": "export KEPT=1"}, headers=alice).status == 200

    async def use_terminal() -> None:
        socket = await jp_ws_fetch(
            "sandkasten", "api", "sessions", session_id, "terminal", headers=alice, params={"rows": 30, "cols": 90}
        )
        socket.write_message(json.dumps(["stdin", "echo sum=$((40+2)); stty size\n"]))
        output = await read_until(socket, "30 90")
        assert "sum=42" in output
        socket.write_message(json.dumps(["set_size", 40, 120]))
        socket.write_message(json.dumps(["stdin", "stty size; exec -a sk-term-job sleep 300\n"]))
        await read_until(socket, "40 120")
        socket.close()

    api.run(use_terminal())
    for _ in range(200):
        ps = api.post("sessions/%s/exec" % session_id, {"command": "ps -eww -o args"}, headers=alice).json["output"]
        if "sk-term-job" not in ps:
            break
        api.run(asyncio.sleep(0.1))
    assert "sk-term-job" not in ps  # closing the socket killed what ran in the terminal
    kept = api.post("sessions/%s/exec" % session_id, {"command": "echo $KEPT"}, headers=alice)
    assert kept.json["output"] == "1\n"  # and the exec shell is as it was


def test_the_terminal_ends_when_bash_exits(api: Api, jp_ws_fetch: Any) -> None:
    alice = as_user("alice")
    session_id = api.post("sessions", {}, headers=alice).json["id"]

    async def exit_bash() -> list[Any]:
        socket = await jp_ws_fetch("sandkasten", "api", "sessions", session_id, "terminal", headers=alice)
        socket.write_message(json.dumps(["stdin", "exit 4\n"]))
        messages = []
        while (message := await asyncio.wait_for(socket.read_message(), 20)) is not None:
            messages.append(json.loads(message))
        return messages

    assert api.run(exit_bash())[-1] == ["disconnect", 4]


def test_only_the_owner_may_attach_and_only_with_the_token(api: Api, jp_ws_fetch: Any) -> None:
    session_id = api.post("sessions", {}, headers=as_user("alice")).json["id"]
    route = ("sandkasten", "api", "sessions", session_id, "terminal")
    with pytest.raises(HTTPClientError) as other_user:
        api.run(jp_ws_fetch(*route, headers=as_user("bob")))
    assert other_user.value.code == 404  # another user's session does not exist for them
    with pytest.raises(HTTPClientError) as no_token:
        api.run(jp_ws_fetch(*route, headers={"Authorization": ""}))
    assert no_token.value.code == 401
    assert no_token.value.response is not None
    assert json.loads(no_token.value.response.body)["error"] == "unauthorized"  # JSON, like every API route
    with pytest.raises(HTTPClientError) as unknown:
        api.run(jp_ws_fetch("sandkasten", "api", "sessions", "nope", "terminal", headers=as_user("alice")))
    assert unknown.value.code == 404


def test_sessions_with_usage(api: Api) -> None:
    alice = as_user("alice")
    session_id = api.post("sessions", {}, headers=alice).json["id"]
    plain = api.get("sessions", headers=alice).json["sessions"]
    assert [s["id"] for s in plain] == [session_id] and "usage" not in plain[0]
    (session,) = api.get("sessions", headers=alice, params={"usage": "true"}).json["sessions"]
    usage = session["usage"]
    assert usage["memory_bytes"] > 0 and usage["pids"] >= 2 and usage["cpu_ns"] > 0
    assert usage["memory_limit_bytes"] == session["limits"]["memory_mb"] << 20
    assert api.get("sessions", headers=as_user("bob"), params={"usage": "true"}).json["sessions"] == []
    assert api.get("sessions", headers=alice, params={"usage": "yes"}).status == 400
