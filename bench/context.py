"""What the figures of one run share: the sizes (full or --quick), the served server, its pool, the clients."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import docker
import httpx

from sandkasten import SandboxClient
from sandkasten_kernel.engine.images import IMAGES
from sandkasten_kernel.engine.sandboxes import LABEL_STATE_DIR
from sandkasten_server.launcher import Served

POOL_IMAGE = IMAGES["python"].tag
POOL_SIZE = 4


@dataclass(frozen=True)
class Sizes:
    kernel_starts: int  # per path: warm, local ipykernel
    gateway_starts: int
    cold_kernel_starts: int
    kernel_executes: int
    creates: int  # create -> first exec, per path
    cold_creates: int
    execs: int  # exec round trips of `true`, per path
    mb_execs: int  # exec round trips with 1 MB of output, per path
    density_steps: tuple[int, ...]
    density_probes: int  # execs per step
    density_budget_s: float
    agents: tuple[int, ...]
    agent_seconds: float  # per concurrency level
    file_sizes: tuple[int, ...]
    file_repeats: int
    bursts: tuple[int, ...]  # clients creating at once
    image_rebuilds: int  # `sandkasten images build` with every image current
    egress_requests: int  # HTTP(S) requests from a sandbox, per mode (proxy, direct by name, by address)
    snapshot_repeats: int  # snapshots, sessions from one and forks of each kind (pause/resume: 4 times as many)


FULL = Sizes(
    kernel_starts=20,
    gateway_starts=10,
    cold_kernel_starts=6,
    kernel_executes=200,
    creates=20,
    cold_creates=8,
    execs=200,
    mb_execs=20,
    density_steps=(1, 5, 10, 20, 40, 80, 120, 160, 200),
    density_probes=200,
    density_budget_s=420,
    agents=(1, 5, 20, 50),
    agent_seconds=30,
    file_sizes=(1_000, 1_000_000, 100_000_000),
    file_repeats=5,
    bursts=(20, 50),
    image_rebuilds=10,
    egress_requests=40,
    snapshot_repeats=5,
)
QUICK = Sizes(
    kernel_starts=1,
    gateway_starts=1,
    cold_kernel_starts=1,
    kernel_executes=10,
    creates=1,
    cold_creates=1,
    execs=10,
    mb_execs=2,
    density_steps=(1, 2, 3),
    density_probes=10,
    density_budget_s=60,
    agents=(1, 2),
    agent_seconds=2,
    file_sizes=(1_000, 1_000_000),
    file_repeats=2,
    bursts=(3,),
    image_rebuilds=2,
    egress_requests=8,
    snapshot_repeats=1,
)

# The served server's sandkasten.yaml for the run. Creates queue for a cold-start slot rather
# than get 503 (a 50-agent burst waits longer than the default 10 s), and the API token is
# one user, so the per-user cap is lifted: the load comes from one benchmark, not 50 people.
SERVER_CONFIG: dict[str, Any] = {
    "pool": {"images": {"python": POOL_SIZE}},
    "quota": {"max_sessions": 300, "max_sessions_per_user": 0, "cold_start_wait_s": 300},
}


@dataclass
class Run:
    sizes: Sizes
    docker: docker.DockerClient
    served: Served
    sdk: SandboxClient
    http: httpx.AsyncClient  # the raw API, for what the SDK does not cover (pool targets)

    async def pool_ready(self, count: int = POOL_SIZE, timeout: float = 300) -> None:
        """Wait until ``count`` warm sandboxes are ready, so the next figure starts on a quiet machine."""
        deadline = time.monotonic() + timeout
        while (await self.sdk.pool.status())["images"].get(POOL_IMAGE, {}).get("ready", 0) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("the pool did not reach %d ready sandboxes in %.0f s" % (count, timeout))
            await asyncio.sleep(0.05)

    async def resize_pool(self, size: int | dict[str, int]) -> None:
        """A count, or {"min": N, "max": M}."""
        reply = await self.http.put("pool", json={"images": {"python": size}})
        reply.raise_for_status()

    async def left_behind(self) -> dict[str, int]:
        """What destroyed sessions left: sessions in the store, and containers and run directories of this
        server beyond its warm pool (waited for, so that none is starting)."""
        await self.pool_ready()
        pool = (await self.sdk.pool.status())["images"][POOL_IMAGE]["ready"]
        state_dir = os.path.realpath(self.served.state_dir)
        deadline = time.monotonic() + 60  # destroyed sessions' containers go in the background, within seconds
        while True:
            containers = self.docker.containers.list(
                all=True, filters={"label": "%s=%s" % (LABEL_STATE_DIR, state_dir)}, ignore_removed=True
            )
            left = {
                "sessions": len(self.served.call("GET", "sessions")["sessions"]),
                "containers": len(containers) - pool,
                "run_dirs": len(os.listdir(os.path.join(state_dir, "sandboxes"))) - pool,
            }
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)

    def container(self, session_id: str) -> Any:
        return self.docker.containers.get(self.served.call("GET", "sessions/%s" % session_id)["container_id"])


async def timed(call: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await call()
    return (time.perf_counter() - started) * 1000, result


def timed_sync(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result
