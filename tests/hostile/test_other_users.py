"""Several users on one server: nobody reaches another's session, files, shell or kernel through the API.

A session of someone else is answered as if it did not exist (404), so its id
leaks nothing; only an admin (security.admin_users) sees and acts on every one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from tests.server.conftest import Api, server_yaml, started_api

ALICE = {"Authorization": "token alice-token"}
BOB = {"Authorization": "token bob-token"}
TEACHER = {"Authorization": "token teacher-token"}


@pytest.fixture
def sandkasten_yaml(state_dir: str, tmp_path: Path) -> Path:
    path = tmp_path / "sandkasten.yaml"
    config = server_yaml(state_dir, security={"admin_users": ["teacher"]})
    config["pool"] = {"images": {"python": 1}, "with_kernel": False}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def jp_server_config(sandkasten_yaml: Path) -> Config:
    config = Config()
    config.ServerApp.jpserver_extensions = {"sandkasten_server": True}
    config.ServerApp.identity_provider_class = "tests.hostile.users.TokenPerUserIdentityProvider"
    config.SandkastenApp.sandkasten_config = str(sandkasten_yaml)
    return config


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Api]:
    yield from started_api(jp_serverapp, jp_fetch, jp_asyncio_loop)


def as_user(api: Api, headers: dict[str, str], method: str, path: str, body: Any = None) -> Any:
    return api.call(method, path, body, headers=headers)


def test_another_users_session_is_out_of_reach(api: Api) -> None:
    created = as_user(api, ALICE, "POST", "sessions", {})
    assert created.status == 201, created.body
    session = created.json["id"]
    assert created.json["owner"] == "alice"
    assert as_user(api, ALICE, "PUT", "sessions/%s/files/secret.txt" % session, b"alice's answer").status in (200, 201)

    attempts = [
        ("GET", "sessions/%s" % session, None),
        ("POST", "sessions/%s/exec" % session, {"command": "cat secret.txt"}),
        ("POST", "sessions/%s/run_code" % session, {"code": "print(open('secret.txt').read())"}),
        ("GET", "sessions/%s/files/secret.txt" % session, None),
        ("GET", "sessions/%s/files/" % session, None),
        ("PUT", "sessions/%s/files/secret.txt" % session, b"bob was here"),
        ("DELETE", "sessions/%s/files/secret.txt" % session, None),
        ("GET", "sessions/%s/archive" % session, None),
        ("DELETE", "sessions/%s" % session, None),
    ]
    for method, path, body in attempts:
        reply = as_user(api, BOB, method, path, body)
        assert (reply.status, reply.json["error"]) == (404, "not_found"), (method, path, reply.body)
    assert session not in [s["id"] for s in as_user(api, BOB, "GET", "sessions").json["sessions"]]
    # Changing the pool or the configuration is for admins; reading the config shows no secret.
    assert as_user(api, BOB, "PUT", "pool", {"images": {"python": 0}}).status == 403
    assert as_user(api, BOB, "PUT", "config", {"yaml": "quota:\n  max_sessions: 1\n"}).status == 403
    assert "not-used-by-pytest-jupyter" not in as_user(api, BOB, "GET", "config").body.decode()

    # Nothing of Bob's reached Alice's sandbox; the teacher sees and reads everything.
    assert as_user(api, ALICE, "GET", "sessions/%s/files/secret.txt" % session).body == b"alice's answer"
    listed = as_user(api, TEACHER, "GET", "sessions").json["sessions"]
    assert session in [s["id"] for s in listed]
    assert as_user(api, TEACHER, "GET", "sessions/%s/files/secret.txt" % session).body == b"alice's answer"
    assert as_user(api, TEACHER, "DELETE", "sessions/%s" % session).status == 204
