"""Snapshots and forks through the REST API: a package installed with ``pip install --user`` and the
workspace's files come back in a new session, and forks are independent copies."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from tests.server.conftest import Api

pytestmark = pytest.mark.docker


def tiny_wheel() -> bytes:
    """A pure-Python wheel, ``skdemo`` 1.0, made here: no index is needed to install it."""
    files = {
        "skdemo/__init__.py": "VALUE = 7\n",
        "skdemo-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: skdemo\nVersion: 1.0\n",
        "skdemo-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join("%s,,\n" % name for name in files) + "skdemo-1.0.dist-info/RECORD,,\n"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("skdemo-1.0.dist-info/RECORD", record)
    return buffer.getvalue()


def test_a_snapshot_brings_back_a_user_installed_package_and_the_workspace(api: Api) -> None:
    session_id = api.session()
    assert api.put("sessions/%s/files/skdemo-1.0-py3-none-any.whl" % session_id, tiny_wheel()).status in (200, 201)
    installed = api.exec(
        session_id,
        "pip install --user --no-index --break-system-packages skdemo-1.0-py3-none-any.whl -q && "
        "mkdir -p results && echo 0.93 > results/score && echo done",
    )
    assert installed["output"].endswith("done\n"), installed
    assert api.post("sessions/%s/run_code" % session_id, {"code": "state = 1"}).status == 200

    snapshot = api.post("sessions/%s/snapshots" % session_id, {"name": "installed"})
    assert snapshot.status == 201, snapshot.body
    assert snapshot.json["name"] == "installed" and snapshot.json["source_session"] == session_id
    assert snapshot.json["bytes"] > 0 and snapshot.json["workspace"]["kind"] == "tmpfs"
    assert snapshot.json["frozen_ms"] > 0 and set(snapshot.json["parts"]) == {"home", "tmp", "workspace"}
    listed = api.get("snapshots").json
    assert [s["name"] for s in listed["snapshots"]] == ["installed"] and isinstance(listed["copy_on_write"], bool)
    assert api.get("snapshots/installed").json["name"] == "installed"

    made = api.post("sessions", {"snapshot": "installed", "with_kernel": True})
    assert made.status == 201, made.body
    copy = made.json["id"]
    assert api.exec(copy, "python3 -c 'import skdemo; print(skdemo.VALUE)'; cat results/score")["output"] == (
        "7\n0.93\n"
    )
    code = api.post("sessions/%s/run_code" % copy, {"code": "import skdemo; skdemo.VALUE * 6"}).json
    assert code["results"][0]["data"]["text/plain"] == "42", code  # the kernel finds the user's packages too

    forks = api.post("sessions/%s/fork" % copy, {"count": 4})
    assert forks.status == 201, forks.body
    ids = [fork["id"] for fork in forks.json["sessions"]]
    assert len(set(ids)) == 4 and copy not in ids
    for i, fork in enumerate(ids):
        api.exec(fork, "echo %d > results/score" % i)
    assert [api.exec(fork, "cat results/score")["output"] for fork in ids] == ["0\n", "1\n", "2\n", "3\n"]
    assert api.exec(copy, "cat results/score")["output"] == "0.93\n"
    assert api.exec(ids[2], "python3 -c 'import skdemo; print(skdemo.VALUE)'")["output"] == "7\n"

    assert api.delete("snapshots/installed").status == 204
    assert api.get("snapshots").json["snapshots"] == []
    assert api.exec(copy, "cat results/score")["output"] == "0.93\n"  # a session from it keeps its files


def test_snapshot_and_fork_bad_input(api: Api) -> None:
    session_id = api.session()

    def error(reply: Any) -> tuple[int, str]:
        return reply.status, reply.json["error"]

    assert error(api.post("sessions", {"snapshot": "missing"})) == (404, "not_found")
    assert error(api.get("snapshots/missing")) == (404, "not_found")
    assert error(api.delete("snapshots/missing")) == (404, "not_found")
    assert error(api.post("sessions/%s/snapshots" % session_id, {"name": "../x"})) == (400, "bad_request")
    assert error(api.post("sessions/%s/snapshots" % session_id, {})) == (400, "bad_request")
    assert error(api.post("sessions/nope/snapshots", {"name": "a"})) == (404, "not_found")
    assert error(api.post("sessions/%s/fork" % session_id, {"count": 17})) == (400, "bad_request")
    assert error(api.post("sessions/%s/fork" % session_id, {"count": 0})) == (400, "bad_request")
    assert api.post("sessions/%s/snapshots" % session_id, {"name": "a"}).status == 201
    assert error(api.post("sessions/%s/snapshots" % session_id, {"name": "a"})) == (409, "snapshot_exists")
    assert error(api.post("sessions", {"snapshot": "a", "image": "node"})) == (400, "bad_request")
    assert api.post("sessions/%s/pause" % session_id).status == 200
    paused = api.post("sessions/%s/snapshots" % session_id, {"name": "b"})  # a paused one can be kept
    assert paused.status == 201 and api.get("sessions/%s" % session_id).json["status"] == "paused"
    assert api.post("sessions/%s/resume" % session_id).status == 200
    assert api.delete("sessions/%s" % session_id).status == 204
    assert error(api.post("sessions/%s/resume" % session_id)) == (404, "not_found")
    assert error(api.post("sessions/%s/fork" % session_id)) == (404, "not_found")
