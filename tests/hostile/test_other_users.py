"""Several users on one server: nobody reaches another's session, files, shell, kernel or
workspace through the API.

A session or workspace of someone else is answered as if it did not exist (404),
so its id or name leaks nothing; only an admin (security.admin_users) sees and
acts on every one. Workspace names are each user's own: two users' "data" are two
workspaces. A kernel started through Jupyter's /api/kernels is its user's session,
counted against that user's quota. Being called "local" makes nobody an admin, and
an authorizer that answers asynchronously is obeyed on websockets too.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from sandkasten_kernel.kernelspecs import kernel_name
from sandkasten_server.identity import SINGLE_USER_PROVIDERS
from tests.server.conftest import Api, server_yaml, started_api

pytestmark = pytest.mark.docker

ALICE = {"Authorization": "token alice-token"}
BOB = {"Authorization": "token bob-token"}
TEACHER = {"Authorization": "token teacher-token"}
LOCAL = {"Authorization": "token local-token"}
READER = {"Authorization": "token reader-token"}
SESSIONS_PER_USER = 3
WORKSPACES_PER_USER = 2
WORKSPACE_MB = 16
WORKSPACES_TOTAL_MB = 3 * WORKSPACE_MB


@pytest.fixture
def sandkasten_yaml(state_dir: str, tmp_path: Path) -> Path:
    path = tmp_path / "sandkasten.yaml"
    config = server_yaml(state_dir, security={"admin_users": ["teacher"]})
    config["pool"] = {"images": {"python": 1}, "with_kernel": False}
    config["workspace"] = {"size_mb": WORKSPACE_MB}
    config["quota"] = {
        "max_sessions_per_user": SESSIONS_PER_USER,
        "max_body_mb": 8,
        "max_workspaces_per_user": WORKSPACES_PER_USER,
        "max_workspaces_total_mb": WORKSPACES_TOTAL_MB,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def jp_server_config(sandkasten_yaml: Path) -> Config:
    config = Config()
    config.ServerApp.jpserver_extensions = {"sandkasten_server": True}
    config.ServerApp.identity_provider_class = "tests.hostile.users.TokenPerUserIdentityProvider"
    config.ServerApp.authorizer_class = "tests.hostile.users.AsyncAuthorizer"
    config.SandkastenApp.sandkasten_config = str(sandkasten_yaml)
    return config


@pytest.fixture
def workspace_names(docker_client: Any) -> Iterator[list[str]]:
    """Names a test gives its workspaces (unique to it); their volumes are removed after it."""
    names: list[str] = []
    yield names
    for volume in docker_client.volumes.list(filters={"label": "sandkasten.workspace"}):
        if volume.attrs.get("Labels", {}).get("sandkasten.workspace") in names:
            volume.remove(force=True)


@pytest.fixture
def api(
    jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, workspace_names: list[str]
) -> Iterator[Api]:
    yield from started_api(jp_serverapp, jp_fetch, jp_asyncio_loop)


def as_user(api: Api, headers: dict[str, str], method: str, path: str, body: Any = None, **options: Any) -> Any:
    return api.call(method, path, body, headers=headers, **options)


def new_workspace(names: list[str], label: str) -> str:
    name = "%s-%s" % (label, uuid.uuid4().hex[:8])
    names.append(name)
    return name


def session_with(api: Api, headers: dict[str, str], workspace: str) -> str:
    created = as_user(api, headers, "POST", "sessions", {"workspace": workspace})
    assert created.status == 201, created.body
    session_id: str = created.json["id"]
    return session_id


def run(api: Api, headers: dict[str, str], session_id: str, command: str) -> str:
    reply = as_user(api, headers, "POST", "sessions/%s/exec" % session_id, {"command": command})
    assert reply.status == 200, reply.body
    output: str = reply.json["output"]
    return output


def workspaces(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    reply = as_user(api, headers, "GET", "workspaces")
    assert reply.status == 200, reply.body
    rows: list[dict[str, Any]] = reply.json["workspaces"]
    return rows


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


def test_a_workspace_name_reaches_only_its_owners_files(api: Api, workspace_names: list[str]) -> None:
    name = new_workspace(workspace_names, "data")
    alices = session_with(api, ALICE, name)
    run(api, ALICE, alices, "echo alice-secret > /workspace/secret.txt")

    # Bob names the same workspace, while Alice's session holds it and after: he gets one of his own.
    bobs = session_with(api, BOB, name)
    assert run(api, BOB, bobs, "ls -A /workspace; cat /workspace/secret.txt 2>&1 || true") == (
        "cat: /workspace/secret.txt: No such file or directory\n"
    )
    run(api, BOB, bobs, "echo bob-was-here > /workspace/bob.txt")
    assert run(api, ALICE, alices, "ls -A /workspace") == "secret.txt\n"

    # Listing: Bob sees his workspace and his session only; the admin sees both, with owners.
    (row,) = [w for w in workspaces(api, BOB) if w["name"] == name]
    assert row["in_use_by"] == [bobs] and row["owner"] == "bob"
    assert alices not in json.dumps(workspaces(api, BOB))
    assert {(w["owner"], tuple(w["in_use_by"])) for w in workspaces(api, TEACHER) if w["name"] == name} == {
        ("alice", (alices,)),
        ("bob", (bobs,)),
    }

    # Bob cannot delete Alice's: not by name (that is his own, in use), not by naming her.
    assert as_user(api, BOB, "DELETE", "workspaces/%s" % name).status == 409
    for_alice = as_user(api, BOB, "DELETE", "workspaces/%s" % name, params={"owner": "alice"})
    assert (for_alice.status, for_alice.json["error"]) == (404, "not_found"), for_alice.body
    assert as_user(api, BOB, "DELETE", "sessions/%s" % bobs).status == 204
    assert as_user(api, BOB, "DELETE", "workspaces/%s" % name).status == 204  # his own, now free
    assert as_user(api, BOB, "DELETE", "workspaces/%s" % name).status == 404

    # Alice's files outlived all of it.
    assert as_user(api, ALICE, "DELETE", "sessions/%s" % alices).status == 204
    again = session_with(api, ALICE, name)
    assert run(api, ALICE, again, "cat /workspace/secret.txt; ls -A /workspace") == "alice-secret\nsecret.txt\n"
    assert [w["owner"] for w in workspaces(api, ALICE) if w["name"] == name] == ["alice"]


def test_workspaces_of_another_user_are_not_listed(api: Api, workspace_names: list[str]) -> None:
    name = new_workspace(workspace_names, "private")
    alices = session_with(api, ALICE, name)
    listed = as_user(api, BOB, "GET", "workspaces")
    assert listed.status == 200
    assert name not in listed.body.decode() and alices not in listed.body.decode(), listed.body
    assert name in as_user(api, TEACHER, "GET", "workspaces").body.decode()
    assert as_user(api, ALICE, "DELETE", "sessions/%s" % alices).status == 204
    # The admin deletes it by naming its owner; Bob, naming her, is told there is no such workspace.
    assert as_user(api, BOB, "DELETE", "workspaces/%s" % name, params={"owner": "alice"}).status == 404
    assert as_user(api, TEACHER, "DELETE", "workspaces/%s" % name, params={"owner": "alice"}).status == 204
    assert name not in as_user(api, ALICE, "GET", "workspaces").body.decode()


def test_a_snapshot_is_its_owners_alone(api: Api, workspace_names: list[str]) -> None:
    name = new_workspace(workspace_names, "snapped")
    alices = session_with(api, ALICE, name)
    run(api, ALICE, alices, "echo alice-secret > /workspace/secret; echo home-secret > ~/secret")
    taken = as_user(api, ALICE, "POST", "sessions/%s/snapshots" % alices, {"name": "mine"})
    assert taken.status == 201, taken.body
    workspace_names.append(taken.json["workspace"]["name"])
    # Bob cannot snapshot or fork her session, nor see, use or delete her snapshot: all as if absent.
    assert as_user(api, BOB, "POST", "sessions/%s/snapshots" % alices, {"name": "stolen"}).status == 404
    assert as_user(api, BOB, "POST", "sessions/%s/fork" % alices, {"count": 1}).status == 404
    assert as_user(api, BOB, "GET", "snapshots").json["snapshots"] == []
    assert as_user(api, BOB, "GET", "snapshots/mine").status == 404
    assert as_user(api, BOB, "GET", "snapshots/mine", params={"owner": "alice"}).status == 404
    assert as_user(api, BOB, "POST", "sessions", {"snapshot": "mine"}).status == 404
    assert as_user(api, BOB, "DELETE", "snapshots/mine", params={"owner": "alice"}).status == 404
    # Bob's own "mine" is another snapshot; a session from Alice's gets a new workspace of hers.
    bobs = as_user(api, BOB, "POST", "sessions", {}).json["id"]
    assert as_user(api, BOB, "POST", "sessions/%s/snapshots" % bobs, {"name": "mine"}).status == 201
    from_hers = as_user(api, ALICE, "POST", "sessions", {"snapshot": "mine"})
    assert from_hers.status == 201, from_hers.body
    workspace_names.append(from_hers.json["workspace"])
    assert run(api, ALICE, from_hers.json["id"], "cat /workspace/secret ~/secret") == "alice-secret\nhome-secret\n"
    assert {s["owner"] for s in as_user(api, TEACHER, "GET", "snapshots").json["snapshots"]} == {"alice", "bob"}
    assert as_user(api, TEACHER, "DELETE", "snapshots/mine", params={"owner": "alice"}).status == 204
    assert as_user(api, BOB, "GET", "snapshots/mine").status == 200  # Bob's is still there
    for headers, session in ((ALICE, alices), (ALICE, from_hers.json["id"]), (BOB, bobs)):
        assert as_user(api, headers, "DELETE", "sessions/%s" % session).status == 204


def test_workspace_quotas(api: Api, workspace_names: list[str]) -> None:
    first, second, third = (new_workspace(workspace_names, "quota") for _ in range(3))
    for name in (first, second):
        assert as_user(api, ALICE, "DELETE", "sessions/%s" % session_with(api, ALICE, name)).status == 204
    refused = as_user(api, ALICE, "POST", "sessions", {"workspace": third})
    assert (refused.status, refused.json["error"]) == (429, "quota_exceeded"), refused.body
    assert "quota.max_workspaces_per_user" in refused.json["message"]
    # Her existing workspaces still mount; another user still has room of his own, up to the total.
    assert as_user(api, ALICE, "DELETE", "sessions/%s" % session_with(api, ALICE, first)).status == 204
    assert as_user(api, BOB, "DELETE", "sessions/%s" % session_with(api, BOB, third)).status == 204
    over = as_user(api, BOB, "POST", "sessions", {"workspace": first})
    assert (over.status, over.json["error"]) == (429, "quota_exceeded"), over.body
    assert "quota.max_workspaces_total_mb" in over.json["message"]
    # Deleting one frees its room.
    assert as_user(api, ALICE, "DELETE", "workspaces/%s" % second).status == 204
    assert as_user(api, BOB, "DELETE", "sessions/%s" % session_with(api, BOB, first)).status == 204


def test_a_user_named_local_is_no_admin(api: Api, jp_serverapp: Any) -> None:
    assert type(jp_serverapp.identity_provider) not in SINGLE_USER_PROVIDERS  # a multi-user server
    alices = as_user(api, ALICE, "POST", "sessions", {}).json["id"]
    assert alices not in as_user(api, LOCAL, "GET", "sessions").body.decode()
    assert as_user(api, LOCAL, "GET", "sessions/%s" % alices).status == 404
    assert as_user(api, LOCAL, "POST", "sessions/%s/exec" % alices, {"command": "id"}).status == 404
    assert as_user(api, LOCAL, "DELETE", "sessions/%s" % alices).status == 404
    assert as_user(api, LOCAL, "PUT", "pool", {"images": {"python": 0}}).status == 403
    assert as_user(api, LOCAL, "GET", "config").json["writable"] is False
    assert as_user(api, ALICE, "GET", "sessions/%s" % alices).status == 200


def test_a_kernel_started_through_jupyter_is_its_users_session(api: Api) -> None:
    def kernels(method: str, *path: str, body: Any = None, headers: dict[str, str] = ALICE) -> Any:
        return api.run(api.fetch("api", "kernels", *path, method=method, body=body, headers=headers, raise_error=False))

    started = kernels("POST", body=json.dumps({"name": kernel_name("python")}))
    assert started.code == 201, started.body
    kernel_id = json.loads(started.body)["id"]
    try:
        (session,) = [s for s in as_user(api, ALICE, "GET", "sessions").json["sessions"] if s["kernel_id"] == kernel_id]
        assert session["owner"] == "alice"
        assert session["id"] not in as_user(api, BOB, "GET", "sessions").body.decode()
        # The kernel's sandbox counts against her quota like any session of hers.
        for _ in range(SESSIONS_PER_USER - 1):
            assert as_user(api, ALICE, "POST", "sessions", {}).status == 201
        refused = as_user(api, ALICE, "POST", "sessions", {})
        assert (refused.status, refused.json["error"]) == (429, "quota_exceeded"), refused.body
        assert as_user(api, BOB, "POST", "sessions", {}).status == 201  # his quota is his own
    finally:
        assert kernels("DELETE", kernel_id).code == 204


@pytest.mark.parametrize("route", ["terminal", "exec/ws"])
def test_a_websocket_obeys_an_async_authorizer(api: Api, jp_ws_fetch: Any, route: str) -> None:
    created = as_user(api, READER, "POST", "sessions", {})  # writing is allowed; executing is not
    assert created.status == 201, created.body
    path = ("sandkasten", "api", "sessions", created.json["id"], *route.split("/"))
    with pytest.raises(HTTPClientError) as refused:
        socket = api.run(jp_ws_fetch(*path, headers=READER))
        socket.close()
    assert refused.value.code == 403
    assert refused.value.response is not None and json.loads(refused.value.response.body)["error"] == "forbidden"
    # The same route opens for a user the authorizer lets execute.
    alices = as_user(api, ALICE, "POST", "sessions", {}).json["id"]
    api.run(jp_ws_fetch("sandkasten", "api", "sessions", alices, *route.split("/"), headers=ALICE)).close()


def test_everyone_lists_the_images_and_only_an_admin_removes_one(api: Api) -> None:
    listed = as_user(api, ALICE, "GET", "images")
    assert listed.status == 200 and [row["name"] for row in listed.json["images"]][:3] == ["base", "python", "node"]
    assert listed.json["admin"] is False and as_user(api, TEACHER, "GET", "images").json["admin"] is True
    for who in (ALICE, LOCAL):  # "local" is nobody special behind a multi-user provider
        refused = as_user(api, who, "DELETE", "images/sk-test-anything")
        assert refused.status == 403 and refused.json["error"] == "forbidden", refused.body
    admin = as_user(api, TEACHER, "DELETE", "images/sk-test-anything")
    assert admin.status == 404 and admin.json["error"] == "not_found"
