"""Figure 14: pause, resume, snapshots and forks, through the REST API of the run's server.

- Pause and resume: the round trip of ``POST sessions/{id}/pause`` and ``/resume`` on a
  session whose kernel runs, taking turns.
- A session holding 100 MB of random bytes (incompressible) in /workspace, twice: on
  the sandbox's tmpfs, and in a named workspace (a disk image). For each: a snapshot,
  a session from it (to its first exec), and a fork of 4 (all four answered). With the
  tmpfs, a fork claims warm sandboxes (the pool is let refill first) and each runner
  unpacks the archive; with a named workspace each fork is a cold start on its own
  copy of the disk image (on ext4 a copy of the used blocks; a reflink on XFS/btrfs).
- numpy: a session from a snapshot in which ``pip install --user`` put a numpy wheel,
  to ``import numpy`` answering, next to a fresh session doing the same install of
  the same wheel (uploaded, installed from the file: the sandboxes reach no index).
  The wheel comes from PyPI to the host once (cached); without it, no such row.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bench.context import POOL_SIZE, Run, timed
from bench.report import summary
from sandkasten import Session

WHEELS = Path.home() / ".cache" / "sandkasten-bench" / "wheels"
NUMPY = "numpy==2.2.6"
FORKS = 4
BLOB = "head -c 100M /dev/urandom > /workspace/blob && sync"
PIP = "pip install --user --no-index --break-system-packages -q /workspace/%s"
IMPORT = "python3 -c 'import numpy; print(numpy.__version__)'"


async def _api(run: Run, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    reply = await run.http.request(method, path, json=body)
    if reply.status_code >= 400:
        raise RuntimeError("%s %s: %s %s" % (method, path, reply.status_code, reply.text[:500]))
    return reply.json() if reply.content else None


async def _pause_resume(run: Run) -> dict[str, Any]:
    session = await run.sdk.create_session(with_kernel=True)
    try:
        await session.exec("true")
        paused, resumed = [], []
        for _ in range(run.sizes.snapshot_repeats * 4):
            ms, _ = await timed(partial(_api, run, "POST", "sessions/%s/pause" % session.id))
            paused.append(ms)
            ms, _ = await timed(partial(_api, run, "POST", "sessions/%s/resume" % session.id))
            resumed.append(ms)
        assert (await session.exec("echo ok")).output == "ok\n"
    finally:
        await session.destroy()
    return {"pause": summary(paused), "resume": summary(resumed)}


async def _destroy_all(sessions: list[dict[str, Any]], run: Run) -> None:
    await asyncio.gather(*(_api(run, "DELETE", "sessions/%s" % s["id"]) for s in sessions))
    for workspace in {s["workspace"] for s in sessions if s["workspace"]}:
        await run.sdk.workspaces.delete(workspace)


async def _hundred_mb(run: Run, named: bool) -> dict[str, Any]:
    workspace = "bench-snap-%s" % uuid.uuid4().hex[:6] if named else None
    source = await run.sdk.create_session(workspace=workspace)
    snapshot_ms, from_snapshot_ms, fork_ms = [], [], []
    try:
        result = await source.exec(BLOB, timeout_ms=120_000)
        assert result.exit_code == 0, result.output
        for i in range(run.sizes.snapshot_repeats):
            name = "bench-%s-%d" % (uuid.uuid4().hex[:6], i)
            ms, row = await timed(partial(_api, run, "POST", "sessions/%s/snapshots" % source.id, {"name": name}))
            snapshot_ms.append(ms)
            await run.pool_ready()

            async def from_snapshot(name: str = name) -> dict[str, Any]:
                made = await _api(run, "POST", "sessions", {"snapshot": name})
                await _api(run, "POST", "sessions/%s/exec" % made["id"], {"command": "true"})
                return made  # type: ignore[no-any-return]

            ms, made = await timed(from_snapshot)
            from_snapshot_ms.append(ms)
            await _destroy_all([made], run)
            await _api(run, "DELETE", "snapshots/%s" % name)
            await run.pool_ready()
            ms, forks = await timed(partial(_api, run, "POST", "sessions/%s/fork" % source.id, {"count": FORKS}))
            fork_ms.append(ms)
            check = await _api(
                run, "POST", "sessions/%s/exec" % forks["sessions"][-1]["id"], {"command": "wc -c < blob"}
            )
            assert check["output"] == "%d\n" % (100 << 20), check
            await _destroy_all(forks["sessions"], run)
    finally:
        await source.destroy()
        if workspace:
            await run.sdk.workspaces.delete(workspace)
    return {
        "snapshot": summary(snapshot_ms),
        "snapshot_bytes": row["bytes"],
        "frozen_ms": row["frozen_ms"],
        "session_from_snapshot": summary(from_snapshot_ms),
        "fork_of_%d" % FORKS: summary(fork_ms),
    }


def numpy_wheel() -> Path | None:
    """A numpy wheel for the sandboxes' Python (3.11), from PyPI once; None where there is no index."""
    found = sorted(WHEELS.glob("numpy-*.whl"))
    if found:
        return found[-1]
    WHEELS.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", NUMPY, "--no-deps", "--only-binary=:all:", "-q"]
    command += ["--python-version", "3.11", "--platform", "manylinux2014_x86_64", "-d", str(WHEELS)]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        return None
    found = sorted(WHEELS.glob("numpy-*.whl"))
    return found[-1] if found else None


async def _install(session: Session, wheel: Path) -> str:
    await session.write(wheel.name, wheel.read_bytes())
    result = await session.exec((PIP % wheel.name) + " && " + IMPORT, timeout_ms=300_000)
    assert result.exit_code == 0, result.output
    return result.output.strip().splitlines()[-1]  # pip may warn first


async def _numpy(run: Run, wheel: Path) -> dict[str, Any]:
    fresh_ms, snapshot_ms = [], []
    source = await run.sdk.create_session()
    version = await _install(source, wheel)
    await _api(run, "POST", "sessions/%s/snapshots" % source.id, {"name": "bench-numpy"})
    await source.destroy()
    try:
        for _ in range(run.sizes.snapshot_repeats):
            await run.pool_ready()

            async def fresh() -> Session:
                session = await run.sdk.create_session()
                assert await _install(session, wheel) == version
                return session

            ms, session = await timed(fresh)
            fresh_ms.append(ms)
            await session.destroy()
            await run.pool_ready()

            async def restored() -> dict[str, Any]:
                made = await _api(run, "POST", "sessions", {"snapshot": "bench-numpy"})
                result = await _api(run, "POST", "sessions/%s/exec" % made["id"], {"command": IMPORT})
                assert result["output"].strip() == version, result
                return made  # type: ignore[no-any-return]

            ms, made = await timed(restored)
            snapshot_ms.append(ms)
            await _destroy_all([made], run)
    finally:
        await _api(run, "DELETE", "snapshots/bench-numpy")
    fresh_s, restored_s = summary(fresh_ms), summary(snapshot_ms)
    return {
        "wheel": wheel.name,
        "pip_install_in_a_fresh_session": fresh_s,
        "session_from_snapshot": restored_s,
        "speedup": round(fresh_s["median_ms"] / restored_s["median_ms"], 1),
    }


async def measure(run: Run) -> dict[str, Any]:
    figures: dict[str, Any] = {"forks": FORKS, "pool_size": POOL_SIZE}
    figures["pause_resume"] = await _pause_resume(run)
    figures["workspace_tmpfs_100mb"] = await _hundred_mb(run, named=False)
    figures["workspace_named_100mb"] = await _hundred_mb(run, named=True)
    copy_on_write = (await _api(run, "GET", "snapshots"))["copy_on_write"]
    figures["copy_on_write"] = copy_on_write
    wheel = await asyncio.to_thread(numpy_wheel)
    if wheel is None:
        figures["numpy_skipped"] = "no numpy wheel: pip download %s failed (no index?)" % NUMPY
    else:
        figures["numpy"] = await _numpy(run, wheel)
    return figures
