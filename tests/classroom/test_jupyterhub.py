"""A class on JupyterHub: Sandkasten as the Hub's service, students' kernels in sandboxes of their own.

The Hub, its proxy, the students' Jupyter servers and Sandkasten are all real
processes, configured by examples/jupyterhub/ (what an operator starts from).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.classroom.hub import INSTRUCTOR, Hub, remove_leftovers, start_hub, stop_hub

pytestmark = pytest.mark.docker

SANDKASTEN = {
    "pool": {"images": {"python": 2}, "with_kernel": True},
    "workspace": {"kernels": "{username}"},
    "quota": {"max_sessions_per_user": 2},
    "session": {"idle_timeout_s": 3600},
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    running = start_hub(tmp_path_factory.mktemp("hub"), SANDKASTEN)
    try:
        for student in ("alice", "bob"):
            running.start_server(student)
        yield running
    finally:
        stop_hub(running)
        remove_leftovers(running)  # the class is over: its sessions and workspaces go


def owners(sessions: list[dict[str, Any]]) -> list[str]:
    return sorted(session["owner"] for session in sessions)


def test_students_kernels_are_theirs_in_sandboxes_and_nobody_elses(hub: Hub) -> None:
    alice_kernel = hub.start_kernel("alice")
    bob_kernel = hub.start_kernel("bob")
    assert hub.run("alice", alice_kernel, "import getpass; print(getpass.getuser())").strip() == "sandbox"
    hub.run("alice", alice_kernel, "open('/workspace/notes.txt', 'w').write('alice was here')")
    hub.run("bob", bob_kernel, "open('/workspace/notes.txt', 'w').write('bob was here')")

    # Each sees their own session only; the instructor (a Hub admin) sees both.
    status, alice = hub.sandkasten("GET", "sessions", "alice")
    assert status == 200 and owners(alice["sessions"]) == ["alice"]
    status, bob = hub.sandkasten("GET", "sessions", "bob")
    assert status == 200 and owners(bob["sessions"]) == ["bob"]
    status, everyone = hub.sandkasten("GET", "sessions", INSTRUCTOR)
    assert status == 200 and owners(everyone["sessions"]) == ["alice", "bob"]

    bobs_session = bob["sessions"][0]["id"]
    for method, path in (
        ("GET", "sessions/%s" % bobs_session),
        ("POST", "sessions/%s/exec" % bobs_session),
        ("GET", "sessions/%s/files/notes.txt" % bobs_session),
        ("DELETE", "workspaces/bob"),
    ):
        status, _ = hub.sandkasten(method, path, "alice", {"command": "cat notes.txt"} if method == "POST" else None)
        assert status == 404, (method, path, status)
    status, workspaces = hub.sandkasten("GET", "workspaces", "alice")
    assert status == 200 and [w["name"] for w in workspaces["workspaces"]] == ["alice"]
    assert hub.run("alice", alice_kernel, "print(open('/workspace/notes.txt').read())").strip() == "alice was here"

    # Quotas count per student: alice's kernel is one of her two sessions; bob's count is his own.
    status, second = hub.sandkasten("POST", "sessions", "alice", {})
    assert status == 201, second
    status, refused = hub.sandkasten("POST", "sessions", "alice", {})
    assert status == 429 and "max_sessions_per_user" in refused["message"]
    status, _ = hub.sandkasten("POST", "sessions", "bob", {})
    assert status == 201
    hub.sandkasten("DELETE", "sessions/%s" % second["id"], "alice")

    # Without a Hub token of someone with access to the service, nothing.
    assert hub.call("GET", "/services/sandkasten/sandkasten/api/sessions", token="not-a-token")[0] in (401, 403)


def test_a_students_workspace_outlives_kernel_and_server_restarts(hub: Hub) -> None:
    kernel = hub.start_kernel("alice")
    hub.run("alice", kernel, "open('/workspace/kept.txt', 'w').write('kept')")
    status, _ = hub.call("POST", "/user/alice/api/kernels/%s/restart" % kernel, hub.token("alice"))
    assert status == 200
    assert hub.run("alice", kernel, "print(open('/workspace/kept.txt').read())").strip() == "kept"
    hub.call("DELETE", "/user/alice/api/kernels/%s" % kernel, hub.token("alice"))

    hub.stop_server("alice")
    hub.start_server("alice")
    again = hub.start_kernel("alice")
    assert hub.run("alice", again, "print(open('/workspace/kept.txt').read())").strip() == "kept"
