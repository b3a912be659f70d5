"""Pauses under CPU contention, for each weight of the sandboxes' parent cgroup (``engine/sandbox_cgroup.py``).

    .venv/bin/python -m bench.freeze [--shares 128 256 512 1024] [--pauses 40] [--host-spinners 2]

For each ``cpu.shares`` of the ``sandkasten`` parent (cgroup v1, Docker's cgroupfs driver, root), it starts a
sandbox spinning four loops under a 1-CPU limit, an idle sandbox with 20 sleeping processes and one waking
every millisecond, and ``--host-spinners`` busy processes on the host; then it pauses and unpauses the idle
sandbox ``--pauses`` times and counts runc's refusals ("unable to freeze"), with the pauses' median and
slowest time. ``docker pause`` is called directly: the engine's retry is not in the count. The parent's
weight is put back afterwards; do not run it beside a serving Sandkasten. It asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import docker
import docker.errors
from docker.models.containers import Container

from bench.context import POOL_IMAGE
from sandkasten_kernel.engine import sandbox_cgroup

SHARES_FILE = os.path.join(sandbox_cgroup.ROOT, "cpu", sandbox_cgroup.PARENT, "cpu.shares")
IDLE_SANDBOX = "for i in $(seq 20); do (sleep 1000) & done; python3 -c 'import time\nwhile 1: time.sleep(0.001)' & wait"


@contextmanager
def parent_shares(shares: int) -> Iterator[None]:
    """The parent's ``cpu.shares`` set to ``shares`` for the block, then put back."""
    with open(SHARES_FILE) as f:
        before = f.read().strip()
    with open(SHARES_FILE, "w") as f:
        f.write("%d\n" % shares)
    try:
        yield
    finally:
        with open(SHARES_FILE, "w") as f:
            f.write(before + "\n")


def pauses(client: docker.DockerClient, shares: int, count: int, host_spinners: int) -> dict[str, float]:
    """Refusals and times of ``count`` pauses of an idle sandbox beside a spinning one, at ``shares``."""
    parent = sandbox_cgroup.sandbox_cgroup_parent(client)

    def sandbox(script: str) -> Container:
        return client.containers.run(
            POOL_IMAGE, ["bash", "-c", script], entrypoint=[], detach=True, cgroup_parent=parent, nano_cpus=10**9
        )

    with parent_shares(shares):
        spinner = sandbox("for i in 1 2 3 4; do (while :; do :; done) & done; wait")
        target = sandbox(IDLE_SANDBOX)
        host = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(host_spinners)]
        refused, times, target_id = 0, [], target.id or ""
        try:
            time.sleep(1)
            for _ in range(count):
                started = time.perf_counter()
                try:
                    client.api.pause(target_id)
                except docker.errors.APIError as exc:
                    if "unable to freeze" not in str(exc.explanation or exc):
                        raise
                    refused += 1
                times.append((time.perf_counter() - started) * 1000)
                if client.api.inspect_container(target_id)["State"]["Paused"]:
                    client.api.unpause(target_id)
        finally:
            for process in host:
                process.kill()
            for container in (spinner, target):
                container.remove(force=True)
    return {"shares": shares, "refused": refused, "median_ms": statistics.median(times), "max_ms": max(times)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.freeze", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", type=int, nargs="+", default=[128, 256, 512, 1024])
    parser.add_argument("--pauses", type=int, default=40)
    parser.add_argument("--host-spinners", type=int, default=2)
    options = parser.parse_args()
    client = docker.from_env()
    if sandbox_cgroup.sandbox_cgroup_parent(client) is None or not os.path.exists(SHARES_FILE):
        print("bench.freeze: needs cgroup v1, Docker's cgroupfs driver and root (see engine/sandbox_cgroup.py)")
        return 1
    print("%-7s %8s %10s %8s" % ("shares", "refused", "median ms", "max ms"))
    for shares in options.shares:
        row = pauses(client, shares, options.pauses, options.host_spinners)
        print("%-7d %4d/%-3d %10.0f %8.0f" % (shares, row["refused"], options.pauses, row["median_ms"], row["max_ms"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
