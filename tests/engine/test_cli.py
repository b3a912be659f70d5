"""`sandkasten sessions|snapshots|pool|workspaces` against a real engine's state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import SessionPaused
from tests.conftest import settings_for


def sandkasten(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The command with ``--config`` (before a ``--``, after which all is the command line of ``run``)."""
    options = list(args)
    at = options.index("--") if "--" in options else len(options)
    options[at:at] = ["--config", str(config)]
    return subprocess.run(
        [sys.executable, "-m", "sandkasten_server.cli", *options],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SANDKASTEN_CONFIG": ""},
    )


async def test_list_and_destroy_sessions_and_workspaces(state_dir: str, tmp_path: Path) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\npool: {images: {base: 0}}\ndefaults: {image: base}\n" % state_dir)
    engine = Engine(settings_for(state_dir, images={}))
    workspace = "cli-%s" % uuid.uuid4().hex[:8]
    record = await engine.create_session(workspace=workspace)
    try:
        listed = sandkasten(config, "sessions", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        (row,) = json.loads(listed.stdout)
        assert row["id"] == record.id and row["workspace"] == workspace and "run_dir" not in row
        table = sandkasten(config, "sessions", "list")
        assert table.stdout.splitlines()[0].split()[:5] == ["ID", "IMAGE", "WORKSPACE", "OWNER", "NETWORK"]
        assert record.id in table.stdout and " off " in table.stdout

        refused = sandkasten(config, "workspaces", "delete", workspace)
        assert refused.returncode == 1 and "in use by session %s" % record.id in refused.stderr

        destroyed = sandkasten(config, "sessions", "destroy", record.id)
        assert destroyed.returncode == 0 and record.id in destroyed.stdout
        assert json.loads(sandkasten(config, "sessions", "list", "--json").stdout) == []

        workspaces = json.loads(sandkasten(config, "workspaces", "list", "--json").stdout)
        assert [w["in_use_by"] for w in workspaces if w["name"] == workspace] == [[]]
        assert sandkasten(config, "workspaces", "delete", workspace).returncode == 0
    finally:
        if engine.store.get_session(record.id):
            await engine.destroy_session(record.id)
        await engine.close()


def test_pool_status_and_errors(state_dir: str, tmp_path: Path, docker_client: Any) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\npool: {images: {node: 2}}\n" % state_dir)
    status = sandkasten(config, "pool", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout) == [{"image": "sandkasten/runtime:node", "min": 2, "max": 2, "ready": 0}]
    assert "schedule" not in sandkasten(config, "pool", "status").stdout

    # A schedule: the sizes its entry sets now, and the entry with the next change, in its time zone.
    schedule = '[{cron: "* * * * *", images: {node: 3}}, {cron: "0 0 1 1 *", images: {node: {min: 0, max: 1}}}]'
    config.write_text(
        "state_dir: %s\npool: {images: {node: 2}, schedule: %s, schedule_timezone: Asia/Tokyo}\n"
        % (state_dir, schedule)
    )
    table = sandkasten(config, "pool", "status").stdout.splitlines()
    assert table[1].split() == ["sandkasten/runtime:node", "3", "3", "0"] and table[3] == "schedule, in Asia/Tokyo:"
    assert table[4].startswith("  now   entry 0 (* * * * *) {node: 3}, since ")
    assert table[5].startswith("  next  entry 0 (* * * * *) {node: 3}, at ")
    missing = sandkasten(config, "sessions", "destroy", "nope")
    assert missing.returncode == 1 and "no session 'nope'" in missing.stderr
    config.write_text("pool: {imgs: 1}\n")
    bad = sandkasten(config, "sessions", "list")
    assert bad.returncode == 1 and "unknown key 'pool.imgs'" in bad.stderr and "Traceback" not in bad.stderr


def test_run_streams_a_command_in_a_sandbox_it_then_removes(state_dir: str, tmp_path: Path, docker_client: Any) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\npool: {images: {base: 1}}\n" % state_dir)
    ran = sandkasten(config, "run", "--", "echo out; echo err >&2; id -un; sh -c 'exit 3'")
    assert ran.returncode == 3, ran.stderr
    assert ran.stdout.splitlines() == ["out", "err", "sandbox"]  # bash on a PTY: one stream, as `docker run -t`
    timed_out = sandkasten(config, "run", "--timeout", "1", "--", "sleep 30")
    assert timed_out.returncode == 124 and "[timed out after 1 s]" in timed_out.stderr
    # Each run was a session of this state directory, destroyed when it ended; the pool was never started.
    assert json.loads(sandkasten(config, "sessions", "list", "--json").stdout) == []
    assert not [c for c in docker_client.containers.list(all=True) if state_dir in str(c.attrs["Mounts"])]
    refused = sandkasten(config, "run", "--image", "ruby", "true")
    assert refused.returncode == 1 and "image 'ruby' is not allowed" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_cli_finds_the_file_serve_made_and_listing_creates_no_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    state = tmp_path / "state"
    (data / "sandkasten").mkdir(parents=True)
    (data / "sandkasten" / "sandkasten.yaml").write_text("state_dir: %s\npool: {images: {node: 1}}\n" % state)
    env = {**os.environ, "XDG_DATA_HOME": str(data), "SANDKASTEN_CONFIG": ""}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sandkasten_server.cli", *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            cwd=tmp_path,
        )

    for listing in (["sessions", "list"], ["workspaces", "list"], ["pool", "status"], ["images", "list"]):
        listed = cli(*listing, "--json")
        assert listed.returncode == 0, listed.stderr
    # The node target comes from the user's file, so that is the file the CLI read.
    assert json.loads(cli("pool", "status", "--json").stdout) == [
        {"image": "sandkasten/runtime:node", "min": 1, "max": 1, "ready": 0}
    ]
    destroyed = cli("sessions", "destroy", "s-1")
    assert destroyed.returncode == 1 and "nothing has used the state directory %s" % state in destroyed.stderr
    assert not state.exists(), "a listing command made a state directory"


def test_version() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "sandkasten_server.cli", "--version"], capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0 and shown.stdout.strip() == "sandkasten " + version("sandkasten-kernel")


async def test_pause_and_resume_sessions(state_dir: str, tmp_path: Path) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\npool: {images: {base: 0}}\ndefaults: {image: base}\n" % state_dir)
    engine = Engine(settings_for(state_dir, images={}))  # as the server's: it sees what the command did
    record = await engine.create_session()
    try:
        await engine.exec(record.id, "export KEPT=yes")
        paused = sandkasten(config, "sessions", "pause", record.id)
        assert paused.returncode == 0 and paused.stdout == "paused %s\n" % record.id, paused.stderr
        (row,) = json.loads(sandkasten(config, "sessions", "list", "--json").stdout)
        assert row["status"] == "paused" and row["paused_at"] is not None
        with pytest.raises(SessionPaused):  # another process paused it: the store says so
            await engine.exec(record.id, "true")
        resumed = sandkasten(config, "sessions", "resume", record.id)
        assert resumed.returncode == 0 and resumed.stdout == "resumed %s\n" % record.id, resumed.stderr
        assert (await engine.exec(record.id, "echo $KEPT")).output == "yes\n"
        missing = sandkasten(config, "sessions", "pause", "nope")
        assert missing.returncode == 1 and "no session 'nope'" in missing.stderr
    finally:
        await engine.destroy_session(record.id)
        await engine.close()


async def test_snapshot_fork_and_delete_from_the_command_line(state_dir: str, tmp_path: Path) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\npool: {images: {base: 0}}\ndefaults: {image: base}\n" % state_dir)
    engine = Engine(settings_for(state_dir, images={}))  # as the server's: it sees what the commands did
    record = await engine.create_session(owner="alice")
    made: list[str] = []
    try:
        await engine.exec(record.id, "echo 0.9 > score; echo home > ~/.kept")
        taken = sandkasten(config, "sessions", "snapshot", record.id, "first")
        assert taken.returncode == 0, taken.stderr
        header, line = taken.stdout.splitlines()
        assert header.split() == ["NAME", "OWNER", "SIZE", "IMAGE", "WORKSPACE", "SOURCE_SESSION", "AGE"]
        assert line.split()[:2] == ["first", "-"] and record.id in line and " tmpfs " in line
        (row,) = json.loads(sandkasten(config, "snapshots", "list", "--json").stdout)
        assert (row["name"], row["owner"], row["source_session"]) == ("first", None, record.id)
        assert (
            row["workspace"]["kind"] == "tmpfs"
            and row["bytes"] > 0
            and set(row["parts"]) == {"home", "tmp", "workspace"}
        )
        again = sandkasten(config, "sessions", "snapshot", record.id, "first")
        assert again.returncode == 1 and "snapshot 'first' already" in again.stderr and "Traceback" not in again.stderr

        copy = await engine.create_session(snapshot="first")  # the server's own, where the command put it
        made.append(copy.id)
        assert (await engine.exec(copy.id, "cat score ~/.kept")).output == "0.9\nhome\n"

        forked = sandkasten(config, "sessions", "fork", record.id, "-n", "2", "--json")
        assert forked.returncode == 0, forked.stderr
        forks = [fork["id"] for fork in json.loads(forked.stdout)]
        made.extend(forks)
        assert len(set(forks)) == 2 and {engine.get_session(fork).owner for fork in forks} == {"alice"}
        for i, fork in enumerate(forks):
            await engine.exec(fork, "echo %d > score" % i)
        assert [(await engine.exec(fork, "cat score")).output for fork in forks] == ["0\n", "1\n"]
        assert (await engine.exec(record.id, "cat score")).output == "0.9\n"
        too_many = sandkasten(config, "sessions", "fork", record.id, "-n", "17")
        assert too_many.returncode == 1 and "1 to 16" in too_many.stderr and "Traceback" not in too_many.stderr
        assert len(engine.list_sessions()) == 4  # none made

        deleted = sandkasten(config, "snapshots", "delete", "first")
        assert deleted.returncode == 0 and deleted.stdout == "deleted snapshot first\n", deleted.stderr
        assert sandkasten(config, "snapshots", "list").stdout == "no snapshots\n"
        missing = sandkasten(config, "snapshots", "delete", "first")
        assert missing.returncode == 1 and "no snapshot 'first'" in missing.stderr
    finally:
        for session_id in [record.id, *made]:
            await engine.destroy_session(session_id)
        await engine.close()
