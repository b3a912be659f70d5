"""Bad input at the API: every file route against every way a path can try to leave /workspace,
racing destroys, and calls on a session that is gone. Never a 500, never a byte outside.

(Fuzzing of every route with schemathesis, bodies of the wrong type, unknown fields,
oversized bodies and a missing or wrong token on every route are in tests/server.)
"""

from __future__ import annotations

import concurrent.futures
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandkasten import SyncSession
from sandkasten_server.launcher import Served

Sessions = Callable[..., SyncSession]

ESCAPES = [
    "../../etc/passwd",
    "a/../../../etc/passwd",
    "/etc/passwd",
    "//etc/passwd",
    "..",
    "x\0y",  # NUL
    "%2e%2e/%2e%2e/etc/passwd",  # encoded twice: decoded once by the server, then it is literal
    "\u202eevil\u202c/../../../etc/passwd",  # right-to-left override
    "n" * 300,  # a name longer than NAME_MAX
    "/".join(["d"] * 3000),  # a path longer than PATH_MAX
    "link-to-root/etc/passwd",  # through a symlink made inside
]
# Routes that take a path: (method, route, body).
FILE_ROUTES = [
    ("GET", "files", None),
    ("PUT", "files", b"x"),
    ("DELETE", "files", None),
    ("GET", "archive", None),
    ("PUT", "archive", b""),
]


@pytest.fixture
def http(hostile_server: Served) -> Any:
    with httpx.Client(base_url=hostile_server.url + "/", headers=hostile_server.headers, timeout=60) as client:
        yield client


def _route(session_id: str, kind: str, path: str) -> str:
    # Dots percent-encoded, so the client does not fold "a/../b" itself: the server must see it.
    return "sessions/%s/%s/%s" % (session_id, kind, urllib.parse.quote(path, safe="/%").replace(".", "%2E"))


def test_no_file_route_reaches_outside_the_workspace(sessions: Sessions, http: httpx.Client) -> None:
    session = sessions()
    session.exec("ln -s / /workspace/link-to-root && echo inside > /tmp/outside.txt")
    for path in ESCAPES:
        for method, kind, body in FILE_ROUTES:
            reply = http.request(method, _route(session.id, kind, path), content=body)
            assert reply.status_code in (400, 404, 409, 413), (method, kind, path, reply.status_code, reply.text)
            assert reply.json()["error"] != "internal", reply.text
            if method == "GET" and kind == "files":
                assert b"root:" not in reply.content
    # Nothing outside changed, and what is inside is intact.
    assert session.exec("cat /tmp/outside.txt; ls -A /workspace").output == "inside\nlink-to-root\n"


def test_odd_but_legal_names_round_trip(sessions: Sessions, http: httpx.Client) -> None:
    session = sessions()
    # Lookalikes of an escape are plain names: a backslash is no separator, fullwidth dots are no dots.
    names = [
        "..\\..\\etc\\passwd",
        "\uff0e\uff0e/\uff0e\uff0e/etc/passwd",
        "h\u00e9llo \u2713.txt",
        "\u65e5\u672c\u8a9e/\u30d5\u30a1\u30a4\u30eb",
        "e\u0301",
        "-rf",
        "a b/c  d",
        "x" * 255,
    ]
    for name in names:
        assert http.put(_route(session.id, "files", name), content=name.encode()).status_code in (200, 201), name
        assert http.get(_route(session.id, "files", name)).content == name.encode()
    assert session.exec("ls -A /workspace | wc -l").output.strip() == str(len({n.split("/")[0] for n in names}))


def test_concurrent_destroys_of_one_session_agree(sessions: Sessions, http: httpx.Client, docker_client: Any) -> None:
    session = sessions()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: http.delete("sessions/%s" % session.id).status_code, range(8)))
    assert codes.count(204) >= 1 and set(codes) <= {204, 404}, codes  # never a docker error
    deadline = time.monotonic() + 30  # the container goes in the background
    while docker_client.containers.list(all=True, filters={"name": "sandkasten-%s" % session.id}):
        assert time.monotonic() < deadline, "the destroyed session's container is still there"
        time.sleep(0.1)


def test_every_call_on_a_destroyed_session_is_a_clean_404(sessions: Sessions, http: httpx.Client) -> None:
    session = sessions()
    session.destroy()
    calls = [
        ("GET", "", None),
        ("POST", "exec", {"command": "echo hi"}),
        ("POST", "exec", {"command": "echo hi", "stream": True}),
        ("POST", "run_code", {"code": "1"}),
        ("GET", "files/x", None),
        ("PUT", "files/x", None),
        ("GET", "archive", None),
        ("DELETE", "", None),
    ]
    for method, route, body in calls:
        try:
            reply = http.request(method, "sessions/%s/%s" % (session.id, route), json=body)
        except httpx.HTTPError as exc:
            raise AssertionError((method, route, exc)) from exc
        assert (reply.status_code, reply.json()["error"]) == (404, "not_found"), (method, route, reply.text)


def test_a_refused_upload_tells_the_client_not_to_reuse_the_connection(sessions: Sessions, http: httpx.Client) -> None:
    # Refused before its body was read, the connection is dropped after the reply: a client
    # that reused it would see its next call fail, so the reply says "Connection: close".
    session = sessions()
    session.destroy()
    for _ in range(20):
        reply = http.put("sessions/%s/files/x" % session.id, content=b"x" * 100)
        assert (reply.status_code, reply.headers.get("Connection")) == (404, "close")
        assert http.get("sessions/%s" % session.id).status_code == 404  # the next call finds a fresh connection
