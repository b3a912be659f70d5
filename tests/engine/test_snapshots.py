"""Snapshots and forks against a real Docker engine: what a session wrote is kept, and new sessions hold it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import (
    EngineError,
    LimitExceeded,
    QuotaExceeded,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotTooLarge,
    WorkspaceExists,
)

# Files in each of the three places a snapshot keeps, a symlink to a host secret (which must stay a mere
# link), a sparse file (which must stay sparse), a dotfile the new shell reads, and a FIFO and a socket.
WRITE_STATE = r"""
set -e
mkdir -p /workspace/proj ~/.local/bin /tmp/cache
echo ws > /workspace/proj/a.txt
echo home > ~/notes.txt
echo 'export FROM_PROFILE=read' >> ~/.profile
echo tmp > /tmp/cache/t.txt
ln -s /etc/shadow /workspace/shadow-link
ln /workspace/proj/a.txt /workspace/proj/hard.txt
truncate -s 5G /tmp/sparse
mkfifo /tmp/fifo
python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/tmp/sock")'
"""
READ_STATE = (
    "cat /workspace/proj/a.txt ~/notes.txt /tmp/cache/t.txt; echo $FROM_PROFILE; readlink /workspace/shadow-link; "
    "stat -c %h /workspace/proj/hard.txt; du -k /tmp/sparse | cut -f1; stat -c %s /tmp/sparse; test -p /tmp/fifo "
    "&& echo fifo; ls /tmp | grep -c sandkasten-runner-"
)


async def test_a_snapshot_keeps_home_tmp_and_workspace_and_a_new_session_holds_them(engine: Engine) -> None:
    source = await engine.create_session()
    result = await engine.exec(source.id, WRITE_STATE)
    assert result.exit_code == 0, result.output

    row = await engine.snapshot_session(source.id, "first")
    assert row.name == "first" and row.source_session == source.id and row.bytes > 0
    assert row.detail["workspace"] == {"kind": "tmpfs", "name": None, "format": "tar"}
    assert row.bytes < 10 << 20  # the 5 GB sparse file is a hole in the archive too
    assert (await engine.exec(source.id, "echo still-running")).output == "still-running\n"
    assert engine.get_session(source.id).status == "running"

    copy = await engine.create_session(snapshot="first")
    assert copy.image == source.image and copy.limits == source.limits
    out = (await engine.exec(copy.id, READ_STATE)).output.split("\n")
    assert out[:5] == ["ws", "home", "tmp", "read", "/etc/shadow"], out
    assert out[5] == "2"  # the hard link is one file still
    assert int(out[6]) < 1024 and out[7] == str(5 << 30)  # sparse: 5 GiB long, nothing allocated
    assert out[8:10] == ["fifo", "1"]  # one runner scratch directory: its own, not the source's
    # Each has its own copy from here on.
    await engine.exec(copy.id, "echo changed > /workspace/proj/a.txt")
    assert (await engine.exec(source.id, "cat /workspace/proj/a.txt")).output == "ws\n"


@pytest.fixture
async def tidy_engine(engine: Engine) -> AsyncIterator[Engine]:
    """The engine, its sessions and then its workspaces (and their Docker volumes) removed after the test."""
    yield engine
    for record in engine.list_sessions():
        await engine.destroy_session(record.id, wait=True)
    for workspace in await engine.list_workspaces():
        await engine.delete_workspace(workspace["name"], workspace["owner"])


async def test_a_named_workspace_goes_to_a_new_workspace_and_forks_diverge(tidy_engine: Engine) -> None:
    engine = tidy_engine
    data = "data-" + uuid.uuid4().hex[:8]
    source = await engine.create_session(workspace=data)
    await engine.exec(source.id, "head -c 20M /dev/urandom > /workspace/blob && echo base > /workspace/f")

    row = await engine.snapshot_session(source.id, "with-data")
    assert row.detail["workspace"]["kind"] == "named" and row.detail["workspace"]["name"] == data
    forks = await engine.fork_session(source.id, 3)
    assert len({fork.id for fork in forks}) == 3 and all(fork.workspace not in (None, data) for fork in forks)
    await asyncio.gather(*(engine.exec(fork.id, "echo fork-%d >> /workspace/f" % i) for i, fork in enumerate(forks)))
    for i, fork in enumerate(forks):
        assert (await engine.exec(fork.id, "cat /workspace/f; wc -c < /workspace/blob")).output == (
            "base\nfork-%d\n%d\n" % (i, 20 << 20)
        )
    assert (await engine.exec(source.id, "cat /workspace/f")).output == "base\n"

    named = await engine.create_session(snapshot="with-data", workspace=data + "-r")
    assert named.workspace == data + "-r"
    assert (await engine.exec(named.id, "cat /workspace/f")).output == "base\n"
    with pytest.raises(WorkspaceExists):
        await engine.create_session(snapshot="with-data", workspace=data + "-r")
    assert not os.listdir(os.path.join(engine.snapshots.root, ".incoming"))  # the fork's capture is gone


async def test_snapshot_bad_input_is_refused_clearly(engine: Engine) -> None:
    record = await engine.create_session()
    with pytest.raises(SnapshotNotFound):
        await engine.create_session(snapshot="nope")
    with pytest.raises(EngineError, match="snapshot names"):
        await engine.snapshot_session(record.id, "../escape")
    await engine.snapshot_session(record.id, "mine", owner="alice")
    with pytest.raises(SnapshotExists):
        await engine.snapshot_session(record.id, "mine", owner="alice")
    with pytest.raises(SnapshotNotFound):  # another user's is none of theirs
        await engine.create_session(snapshot="mine", workspace_owner="bob")
    with pytest.raises(SnapshotNotFound):
        await engine.delete_snapshot("mine", owner="bob")
    assert [row.name for row in engine.list_snapshots("bob")] == []
    with pytest.raises(LimitExceeded):
        await engine.fork_session(record.id, 17)
    with pytest.raises(LimitExceeded):
        await engine.fork_session(record.id, 0)
    with pytest.raises(EngineError, match="snapshot's image"):
        await engine.create_session(snapshot="mine", workspace_owner="alice", image="python")

    engine.settings.quota.max_snapshots_per_user = 1
    with pytest.raises(QuotaExceeded):
        await engine.snapshot_session(record.id, "second", owner="alice")
    engine.settings.quota.max_snapshot_mb = 1
    await engine.exec(record.id, "head -c 2M /dev/urandom > /tmp/big")
    with pytest.raises(SnapshotTooLarge):
        await engine.snapshot_session(record.id, "big")
    assert engine.get_session(record.id).status == "running"  # the failed capture thawed it again

    engine.settings.quota.max_snapshot_mb = 2048
    engine.settings.quota.max_snapshot_files = 1000
    await engine.exec(record.id, "rm /tmp/big; mkdir /tmp/many && cd /tmp/many && seq 2000 | xargs touch")
    with pytest.raises(SnapshotTooLarge, match="max_snapshot_files"):  # counted, not archived
        await engine.snapshot_session(record.id, "many")

    await engine.delete_snapshot("mine", owner="alice")
    assert engine.list_snapshots("alice") == []
    assert not os.listdir(os.path.join(engine.snapshots.root, ".incoming"))
