"""A sandbox using up what it was given: the limit holds, the client hears why, and the neighbours don't notice.

The hostile server's sandboxes have 256 MiB of memory, 128 processes, a 64 MiB
/tmp and a 64 MiB /workspace (conftest.py).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandkasten import SyncSandboxClient, SyncSession
from sandkasten_server.launcher import Served

Sessions = Callable[..., SyncSession]


def _alive(session: SyncSession) -> None:
    assert session.exec("echo alive", timeout_ms=30_000).output.strip() == "alive"


def test_a_fork_bomb_hits_the_pids_limit_and_the_neighbour_is_unaffected(sessions: Sessions) -> None:
    bomb, neighbour = sessions(), sessions()
    result = bomb.exec("bomb() { bomb | bomb & }; bomb; sleep 3; echo done", timeout_ms=15_000)
    assert "fork: retry" in result.output or "Resource temporarily unavailable" in result.output
    _alive(neighbour)
    assert neighbour.exec("seq 1000 | wc -l").output.strip() == "1000"
    # The bomb's sandbox recovers once its processes are killed (kill -1 spares PID 1, the runner).
    bomb.exec("kill -9 -1", timeout_ms=15_000)
    _alive(bomb)


def test_a_memory_bomb_is_oom_killed_and_the_client_is_told(sessions: Sessions) -> None:
    session = sessions()
    result = session.exec("python3 -c 'x = bytearray(1 << 30)'", timeout_ms=60_000)
    assert result.exit_code == 137 and result.oom_killed, result
    assert "Killed" in result.output
    _alive(session)
    assert not session.exec("python3 -c 'x = bytearray(1 << 20)'").oom_killed  # the flag is per command


# /run/sandkasten is the host's run directory, a 4 MiB tmpfs of its own, and a named workspace an
# image of workspace.size_mb (the server runs as root here).
@pytest.mark.parametrize(
    ("directory", "workspace"),
    [("/tmp", None), ("/workspace", None), ("/workspace", "hostile-fill"), ("/run/sandkasten", None)],
)
def test_filling_a_disk_stops_at_its_size_and_the_host_disk_is_untouched(
    sessions: Sessions, client: SyncSandboxClient, directory: str, workspace: str | None
) -> None:
    session = sessions(workspace=workspace)
    host_free_before = shutil.disk_usage("/").free
    result = session.exec("head -c 2G /dev/zero > %s/fill; echo rc=$?; df -m %s | tail -1" % (directory, directory))
    assert "No space left on device" in result.output and "rc=1" in result.output
    size_mb = int(result.output.split()[-5])  # df: size used avail use% mount
    assert size_mb <= 64
    assert abs(shutil.disk_usage("/").free - host_free_before) < 512 << 20  # a tmpfs: not the host's disk
    session.exec("rm %s/fill" % directory)
    assert session.write("after.txt", "ok")
    _alive(session)
    if workspace is not None:
        session.destroy()
        client.workspaces.delete(workspace)


def _exec_p99_ms(session: SyncSession, n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        session.exec("true")
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return samples[min(n - 1, round(0.99 * (n - 1)))]


def test_a_cpu_spin_on_every_core_leaves_the_neighbours_exec_latency_within_3x(sessions: Sessions) -> None:
    spinner, neighbour = sessions(), sessions()
    baseline = statistics.median(_exec_p99_ms(neighbour, 100) for _ in range(3))
    cores = os.cpu_count() or 2
    spinner.exec("for i in $(seq %d); do (while :; do :; done) & done" % (2 * cores))
    try:
        time.sleep(1)
        loaded = statistics.median(_exec_p99_ms(neighbour, 100) for _ in range(3))
    finally:
        spinner.exec("kill $(jobs -p)")
    # A floor of 5 ms keeps a sub-millisecond baseline from turning scheduler noise into a failure.
    assert loaded <= 3 * max(baseline, 5.0), "exec p99 %.1f ms under load, %.1f ms before" % (loaded, baseline)


def test_a_gigabyte_of_output_is_capped_and_streamed_in_bounded_memory(
    sessions: Sessions, hostile_server: Served
) -> None:
    session = sessions()
    rss_before = hostile_server.rss_mb()
    result = session.exec("head -c 1G /dev/zero | tr '\\0' a", timeout_ms=120_000)
    assert result.truncated and result.exit_code == 0
    assert result.output_bytes == 1 << 30 and len(result.output) < 64 << 20
    streamed = 0
    stream = session.exec_stream("head -c 1G /dev/zero | tr '\\0' b", timeout_ms=120_000)
    for chunk in stream:
        streamed += len(chunk)
    assert stream.result is not None and stream.result.truncated and stream.result.output_bytes == 1 << 30
    assert 0 < streamed < 64 << 20
    assert hostile_server.rss_mb() - rss_before < 150, "the server held the output"
    _alive(session)


def test_a_million_tiny_files(sessions: Sessions) -> None:
    # Each empty file costs the sandbox about 1 KiB of kernel memory (inode and dentry),
    # charged to its memory limit: a million fit in 2 GiB, and the runner survives either way.
    session = sessions(limits={"memory_mb": 2048})
    made = session.exec(
        'mkdir /tmp/many && cd /tmp/many && python3 -c "\nfor i in range(1_000_000):\n'
        "    try: open(str(i), 'w').close()\n    except OSError as e: print(i, e.strerror); break\n\"; "
        "ls -f | wc -l",
        timeout_ms=240_000,
    )
    assert not made.timed_out and made.output.split()[-1] == "1000002", made.output  # ls -f counts . and ..
    session.exec("rm -rf /tmp/many", timeout_ms=240_000)
    _alive(session)


def test_a_directory_too_big_for_one_listing_is_listed_and_archived_whole(sessions: Sessions, tmp_path: Path) -> None:
    session = sessions()
    session.exec("mkdir /workspace/many && cd /workspace/many && seq -w 25000 | xargs touch", timeout_ms=120_000)
    names = [entry.name for entry in session.list("many")]  # the SDK follows the pages
    assert names == ["%05d" % i for i in range(1, 25001)]
    session.download("many", tmp_path)  # the tar archive walks the pages too
    assert len(os.listdir(tmp_path)) == 25000
