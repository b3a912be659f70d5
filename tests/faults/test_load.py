"""Load: 50 agents at once, each a session doing mixed shell, file and kernel work, for a while.

What must hold: every byte written is read back identical (zero lost writes),
no call fails, the server's memory stays bounded, and once it stops nothing is
left: no container, no run directory, no volume. CI runs it for --soak-seconds
(45 by default); ``pytest tests/faults/test_load.py --soak-seconds 300`` is the
five-minute soak. Figures are printed (run pytest with -s to see them).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandkasten import SandboxClient, Session
from sandkasten_server import launcher
from sandkasten_server.launcher import Served
from tests.conftest import containers_of

AGENTS = 50
KERNEL_EVERY = 5  # one agent in five also drives its sandbox's kernel
WORKSPACE_EVERY = 10  # one in ten works on a named workspace volume
RSS_BOUND_MB = 400  # growth of the server's memory over the run


@dataclass
class Tally:
    calls: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    written: dict[tuple[str, str], str] = field(default_factory=dict)  # (session, path) -> sha256
    errors: list[str] = field(default_factory=list)


async def timed(tally: Tally, call: Any) -> Any:
    started = time.perf_counter()
    result = await call
    tally.latencies_ms.append((time.perf_counter() - started) * 1000)
    tally.calls += 1
    return result


async def agent(number: int, client: SandboxClient, deadline: float, tally: Tally) -> None:
    rng = random.Random(number)
    workspace = "load-%02d" % number if number % WORKSPACE_EVERY == 0 else None
    kernel = number % KERNEL_EVERY == 0
    session: Session = await timed(tally, client.create_session(workspace=workspace))
    step = 0
    try:
        while time.monotonic() < deadline:
            step += 1
            data = rng.randbytes(rng.choice([1, 1024, 64 << 10, 512 << 10]))
            path = "agent%02d/step%04d.bin" % (number, step)
            await timed(tally, session.write(path, data))
            digest = hashlib.sha256(data).hexdigest()
            tally.written[(session.id, path)] = digest
            result = await timed(tally, session.exec("sha256sum %s | cut -c1-64" % path))
            if result.output.strip() != digest:
                tally.errors.append("%s: the shell saw %r, not %s" % (path, result.output, digest))
            if await timed(tally, session.read_bytes(path)) != data:
                tally.errors.append("%s: read back different bytes" % path)
            if kernel and step % 3 == 0:
                code = await timed(tally, session.run_code("total = %d * %d\nprint(total)" % (step, number)))
                if code.stdout.strip() != str(step * number) or code.error is not None:
                    tally.errors.append("run_code in %s: %r" % (session.id, code))
            if step % 10 == 0 and workspace is None:  # churn: a new session now and then
                await verify(session, tally)
                await timed(tally, session.destroy())
                session = await timed(tally, client.create_session())
        await verify(session, tally)
    except Exception as exc:  # counted, never swallowed: the test fails on any
        tally.errors.append("agent %d: %s: %s" % (number, type(exc).__name__, exc))
    finally:
        await session.destroy()
        if workspace is not None:
            await client.workspaces.delete(workspace)


async def verify(session: Session, tally: Tally) -> None:
    """Every file this session was given, read back before it goes."""
    for (session_id, path), digest in list(tally.written.items()):
        if session_id == session.id:
            data = await timed(tally, session.read_bytes(path))
            if hashlib.sha256(data).hexdigest() != digest:
                tally.errors.append("%s in %s: lost or changed" % (path, session_id))
            del tally.written[(session_id, path)]


@pytest.mark.timeout(3600)  # the soak's own deadline bounds it (--soak-seconds), not the suite's 300 s
def test_fifty_agents_lose_nothing_and_leave_nothing(request: pytest.FixtureRequest, docker_client: Any) -> None:
    seconds = float(request.config.getoption("--soak-seconds"))
    volumes_before = {v.name for v in docker_client.volumes.list()}
    server: Served = launcher.start(
        {
            "pool": {"images": {"python": 5}, "with_kernel": False},
            "quota": {"max_sessions": AGENTS + 10, "max_sessions_per_user": AGENTS + 10, "cold_start_wait_s": 120},
            "defaults": {"memory_mb": 256},
        }
    )
    samples: list[float] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(1.0):
            samples.append(server.rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    tally = Tally()
    try:
        rss_start = server.rss_mb()
        sampler.start()

        async def run() -> None:
            async with SandboxClient(server.base_url, server.api_key, timeout=300) as client:
                deadline = time.monotonic() + seconds
                await asyncio.gather(*(agent(n, client, deadline, tally) for n in range(AGENTS)))

        started = time.monotonic()
        asyncio.run(run())
        elapsed = time.monotonic() - started
        sampling.set()
        sampler.join()
        assert not tally.errors, "%d errors, first: %s" % (len(tally.errors), tally.errors[:5])
        assert not tally.written, "files not verified: %d" % len(tally.written)
        latencies = sorted(tally.latencies_ms)
        p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
        print(
            "\nload: %d agents, %.0f s, %d calls (%.1f/s), median %.1f ms, p99 %.1f ms, server RSS %.0f -> max %.0f MB"
            % (
                AGENTS,
                elapsed,
                tally.calls,
                tally.calls / elapsed,
                statistics.median(latencies),
                p99,
                rss_start,
                max(samples, default=rss_start),
            )
        )
        assert max(samples, default=rss_start) - rss_start < RSS_BOUND_MB
        assert server.call("GET", "sessions")["sessions"] == []
    finally:
        sampling.set()
        server.stop()
        leftovers = containers_of(docker_client, server.state_dir)
        run_dirs = os.listdir(os.path.join(server.state_dir, "sandboxes"))
        server.remove_state()
    assert not leftovers, "containers left: %s" % leftovers
    assert not run_dirs, "run directories left: %s" % run_dirs
    assert {v.name for v in docker_client.volumes.list()} <= volumes_before, "volumes left behind"
