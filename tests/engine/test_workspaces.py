"""Workspaces as the engine keeps them: each a name within an owner, recorded in the store,
counted against the quotas; the server's own keep the volumes they always had."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import uuid
from typing import Any

import docker
import pytest

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import QuotaExceeded, WorkspaceNotFound
from sandkasten_kernel.engine.sandboxes import LABEL_WORKSPACE
from sandkasten_kernel.engine.store import SCHEMA_VERSION, Store
from sandkasten_kernel.engine.workspace_names import workspace_ref
from tests.conftest import settings_for

# The sessions table as version 1 made it, before workspaces had owners.
SCHEMA_1 = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY, container_id TEXT NOT NULL, image TEXT NOT NULL, workspace TEXT,
    run_dir TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL, last_active REAL NOT NULL,
    ttl_s INTEGER NOT NULL, idle_timeout_s INTEGER NOT NULL, limits TEXT NOT NULL, network INTEGER NOT NULL,
    env TEXT NOT NULL, kernel_id TEXT, owner TEXT, warm INTEGER NOT NULL, exec_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, session_id TEXT, kind TEXT NOT NULL, detail TEXT NOT NULL
);
PRAGMA user_version=1;
"""


def test_a_version_1_store_is_migrated_in_place(tmp_path: Any) -> None:
    path = str(tmp_path / "sandkasten.db")
    old = sqlite3.connect(path)
    old.executescript(SCHEMA_1)
    limits = json.dumps({"cpus": 1.0, "memory_mb": 512, "pids": 256})
    old.execute(
        "INSERT INTO sessions VALUES ('s1', 'c1', 'img', 'data', '/run/x', 'running', 1, 1, 0, 0, ?, 0, '{}', "
        "NULL, 'local', 0, 3)",
        (limits,),
    )
    old.commit()
    old.close()

    store = Store(path)
    (record,) = store.list_sessions()
    assert (record.id, record.workspace, record.workspace_owner, record.exec_count) == ("s1", "data", None, 3)
    assert (record.status, record.paused_at, record.paused_s) == ("running", None, 0.0)  # version 4's columns
    assert store.list_workspaces() == []
    store.close()
    store = Store(path)  # opening it again changes nothing
    assert [r.id for r in store.list_sessions()] == ["s1"]
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_volume_names_are_valid_and_apart_for_any_user_name(tmp_path: Any) -> None:
    names = ["alice", "Alice", "bob smith", "../etc", "ü@x/y", "", "local", "a" * 300]
    refs = [workspace_ref(str(tmp_path), "data", owner) for owner in names]
    server_own = workspace_ref(str(tmp_path), "data", None)
    volumes = {ref.volume for ref in refs}
    assert len(volumes) == len(names) and server_own.volume not in volumes
    assert server_own.volume == "sandkasten-ws-data"  # the name it always had
    for ref in refs:
        assert re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", ref.volume), ref.volume
        assert "/" not in ref.disk_dir.removeprefix("users/") and ".." not in ref.disk_dir
    # Another server (another state directory) gives the same user other volumes.
    assert workspace_ref(str(tmp_path / "other"), "data", "alice").volume not in volumes


async def test_an_existing_workspace_of_the_server_still_mounts_beyond_the_quota(
    state_dir: str, docker_client: Any
) -> None:
    settings = settings_for(state_dir, images={})
    settings.quota.max_workspaces_per_user = 1
    engine = Engine(settings)
    await engine.start()
    legacy, fresh, refused = ("%s-%s" % (kind, uuid.uuid4().hex[:8]) for kind in ("legacy", "fresh", "no"))
    # As a version before workspace owners left it: a volume, unknown to the store.
    docker_client.volumes.create(name="sandkasten-ws-%s" % legacy, labels={LABEL_WORKSPACE: legacy})
    try:
        assert [w["owner"] for w in await engine.list_workspaces() if w["name"] == legacy] == [None]
        made = await engine.create_session(workspace=fresh)
        await engine.destroy_session(made.id)
        with pytest.raises(QuotaExceeded, match=r"quota\.max_workspaces_per_user"):
            await engine.create_session(workspace=refused)
        kept = await engine.create_session(workspace=legacy)  # already there: no new workspace
        assert (await engine.exec(kept.id, "touch /workspace/ok && echo yes")).output == "yes\n"
        await engine.destroy_session(kept.id)
        for name in (legacy, fresh):
            await engine.delete_workspace(name)
        with pytest.raises(WorkspaceNotFound):
            await engine.delete_workspace(legacy)
        with pytest.raises(WorkspaceNotFound):
            await engine.delete_workspace("..")  # never a path
        assert not os.path.exists(engine.workspace_disks.image(workspace_ref(state_dir, fresh, None)))
    finally:
        await engine.close()
        for name in (legacy, fresh, refused):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.volumes.get("sandkasten-ws-%s" % name).remove(force=True)
