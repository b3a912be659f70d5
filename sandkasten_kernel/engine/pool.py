"""The warm pool: running sandboxes per image, handed out without a container start.

A claim pops a ready sandbox and checks its runner with one handshake; it never
waits for a refill. A background task keeps each image at its target, which
``pool_demand`` moves between the configured floor and ceiling, starting up to
``parallel_starts`` sandboxes at once (images furthest below target first),
and none while sessions start cold: those are what clients wait for.
Sizes change at run time with ``resize``: through the API, a configuration
change, or ``pool.schedule`` (``pool_scheduler``).

The floor's sandboxes have their kernel started (``with_kernel``); the surplus
that demand adds has not. A kernel start costs three times a sandbox's own
(importing ipykernel is most of a cold start's CPU), and a burst of agents
mostly wants shells: so a burst refills three times faster, while a claim that
wants a kernel takes one whose kernel runs, where there is one.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import EngineError
from .pool_demand import Demand, PoolSize
from .sandbox_spec import SandboxLimits
from .sandboxes import LABEL_POOL, LABEL_SESSION, Sandbox, SandboxFactory

log = logging.getLogger("sandkasten.pool")
HISTORY_POINTS = 300  # ready counts, one per refill pass, for the dashboard's sparkline
IDLE_WAKE_S = 5.0  # how often an idle refill loop looks at the targets anyway (shrinking, history)
YIELD_POLL_S = 0.1  # how often a refill held back by cold starts looks again


class ReadySandboxes:
    """One image's ready sandboxes: those whose kernel runs, and bare ones, each oldest first."""

    def __init__(self) -> None:
        self.with_kernel: collections.deque[Sandbox] = collections.deque()
        self.bare: collections.deque[Sandbox] = collections.deque()

    def __len__(self) -> int:
        return len(self.with_kernel) + len(self.bare)

    def __iter__(self) -> Iterator[Sandbox]:
        return itertools.chain(self.with_kernel, self.bare)

    def add(self, sandbox: Sandbox) -> None:
        (self.with_kernel if sandbox.kernel is not None else self.bare).append(sandbox)

    def take(self, wants_kernel: bool) -> Sandbox | None:
        """The oldest of the kind asked for, else the oldest of the other kind."""
        queues = (self.with_kernel, self.bare) if wants_kernel else (self.bare, self.with_kernel)
        for queue in queues:
            if queue:
                return queue.popleft()
        return None

    def surplus(self) -> Sandbox:
        """The one to give back first when the pool shrinks: the newest bare one, else the newest."""
        return self.bare.pop() if self.bare else self.with_kernel.pop()

    def discard(self, sandbox: Sandbox) -> None:
        for queue in (self.with_kernel, self.bare):
            if sandbox in queue:
                queue.remove(sandbox)


@dataclass
class PoolCounters:
    """Claims, misses, starts and failures of one image's warm pool, for the status report."""

    claims: int = 0
    misses: int = 0
    started: int = 0
    failed: int = 0
    last_error: str | None = None
    failures_in_a_row: int = 0
    retry_at: float = 0.0  # after a failure: no new start of the image before this (loop time)


class WarmPool:
    """Keeps running sandboxes ready per image and hands them out without a container start."""

    def __init__(
        self,
        factory: SandboxFactory,
        limits: SandboxLimits,
        with_kernel: bool,
        parallel_starts: int = 2,
        shrink_after_s: float = 300.0,
    ) -> None:
        self._factory = factory
        self.limits = limits
        self.with_kernel = with_kernel
        self.parallel_starts = parallel_starts
        self.shrink_after_s = shrink_after_s
        # Whether sessions are starting cold (the engine's cold-start gate): refills wait meanwhile.
        self.cold_starts_running: Callable[[], bool] = lambda: False
        # Whether an image can start a kernel at all (an added image without ipykernel cannot).
        self.has_kernel: Callable[[str], bool] = lambda image: True
        self._ready: dict[str, ReadySandboxes] = collections.defaultdict(ReadySandboxes)
        self._demand: dict[str, Demand] = {}
        self._counters: dict[str, PoolCounters] = collections.defaultdict(PoolCounters)
        self._history: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(
            lambda: collections.deque(maxlen=HISTORY_POINTS)
        )
        self._starting: dict[str, int] = collections.defaultdict(int)
        self._starting_kernels: dict[str, int] = collections.defaultdict(int)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, sizes: dict[str, PoolSize]) -> None:
        """Begin keeping warm sandboxes per image within ``sizes``, in a background task."""
        self._demand = {image: Demand(size, self.shrink_after_s) for image, size in sizes.items()}
        self._task = asyncio.create_task(self._refill_loop(), name="sandkasten-pool")

    async def close(self) -> None:
        """Stop refilling and remove every warm sandbox.

        Starts under way are let finish (and then removed) rather than cancelled,
        so no half-made container is left behind.
        """
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=120)
            except asyncio.TimeoutError:
                log.error("pool: a sandbox start did not finish in 120 s; giving up on it")
            self._task = None
        for ready in self._ready.values():
            while ready:
                await self._factory.destroy(ready.surplus())

    # -- claims ----------------------------------------------------------------------

    async def claim(self, image: str, wants_kernel: bool = True) -> Sandbox | None:
        """A ready sandbox of ``image`` (one whose kernel runs, if ``wants_kernel`` and there is
        one; else a bare one first), or None (a miss) when there is none."""
        ready = self._ready[image]
        counters = self._counters[image]
        demand = self._demand.get(image)
        while (sandbox := ready.take(wants_kernel)) is not None:
            if demand is not None:
                demand.claimed(len(ready))
            self._wake.set()
            try:
                client = await sandbox.connect(timeout=1.0)
                await client.close()
            except EngineError as exc:  # died while waiting: drop it, try the next
                log.warning("warm sandbox %s is unusable (%s); removing it", sandbox.id, exc)
                await self._factory.destroy(sandbox)
                continue
            counters.claims += 1
            return sandbox
        counters.misses += 1
        if demand is not None:
            demand.missed()
        self._wake.set()
        return None

    async def drop_unless_running(self, running: set[str]) -> None:
        """Forget ready sandboxes whose container is not among ``running`` (the refill replaces them)."""
        for image, ready in self._ready.items():
            dead = [sandbox for sandbox in ready if sandbox.container_id not in running]
            for sandbox in dead:
                ready.discard(sandbox)
                log.warning("warm sandbox %s of %s stopped; replacing it", sandbox.id, image)
                await self._factory.destroy(sandbox)
            if dead:
                self._wake.set()

    # -- sizes -----------------------------------------------------------------------

    async def resize(self, image: str, size: PoolSize, reset: bool = False) -> None:
        """Set ``image``'s floor and ceiling at run time; ready sandboxes beyond the new target go at once.
        ``reset``: the target goes to the new floor, whatever demand had raised it to (``Demand.resize``)."""
        demand = self._demand.get(image)
        if demand is None:
            demand = self._demand[image] = Demand(size, self.shrink_after_s)
        else:
            demand.resize(size, reset)
        await self._remove_surplus(image)
        self._wake.set()

    def target(self, image: str) -> int:
        """How many warm sandboxes of ``image`` the pool keeps now."""
        demand = self._demand.get(image)
        return demand.target if demand is not None else 0

    async def _remove_surplus(self, image: str) -> None:
        ready = self._ready[image]
        while len(ready) > self.target(image):
            await self._factory.destroy(ready.surplus())

    async def ready_in_docker(self, claimed: set[str]) -> dict[str, int]:
        """Warm sandboxes per image as Docker shows them, whichever process's pool started them."""
        ready: collections.Counter[str] = collections.Counter()
        for container in await self._factory.backend.containers(self._factory.own_label):
            image = container.labels.get(LABEL_POOL)
            if image is not None and container.running and container.labels.get(LABEL_SESSION) not in claimed:
                ready[image] += 1
        return dict(ready)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per image: floor, ceiling, target, ready and starting counts, counters and history, for the dashboard."""
        images = set(self._demand) | {image for image, ready in self._ready.items() if ready}
        result = {}
        for image in sorted(images):
            counters = self._counters[image]
            demand = self._demand.get(image)
            size = demand.size if demand is not None else PoolSize(0, 0)
            result[image] = {
                "target": self.target(image),
                "min": size.min,
                "max": size.max,
                "ready": len(self._ready[image]),
                "ready_with_kernel": len(self._ready[image].with_kernel),
                "starting": self._starting[image],
                "claims": counters.claims,
                "misses": counters.misses,
                "started": counters.started,
                "failed": counters.failed,
                "last_error": counters.last_error,
                "history": list(self._history[image]),
            }
        return result

    # -- refilling -------------------------------------------------------------------

    def _short_of(self, now: float) -> str | None:
        """The image furthest below its target (counting starts under way) that may start now, if any."""
        gaps = {
            image: demand.target - len(self._ready[image]) - self._starting[image]
            for image, demand in self._demand.items()
            if self._counters[image].retry_at <= now
        }
        image = max(gaps, key=lambda name: gaps[name], default=None)
        return image if image is not None and gaps[image] > 0 else None

    async def _refill_loop(self) -> None:
        loop = asyncio.get_running_loop()
        starts: set[asyncio.Task[None]] = set()
        while not self._closing:
            for image, demand in self._demand.items():
                if demand.settle():  # quiet for a while: give some back
                    await self._remove_surplus(image)
            # Cold starts are what clients wait for now: a refill is for later, and would slow them.
            yielding = self.cold_starts_running()
            while (
                not yielding and len(starts) < max(1, self.parallel_starts) and (short := self._short_of(loop.time()))
            ):
                with_kernel = self._next_has_kernel(short)
                self._starting[short] += 1  # counted now: the loop's next _short_of sees it
                self._starting_kernels[short] += with_kernel
                starts.add(asyncio.create_task(self._start_one(short, with_kernel), name="sandkasten-pool-start"))
            if not starts:
                for name in self._demand:
                    self._history[name].append((time.time(), len(self._ready[name])))
            self._wake.clear()
            woken = asyncio.ensure_future(self._wake.wait())
            timeout = YIELD_POLL_S if yielding else IDLE_WAKE_S
            done, _ = await asyncio.wait({woken, *starts}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            woken.cancel()
            starts -= done
        if starts:
            await asyncio.wait(starts)

    def _next_has_kernel(self, image: str) -> bool:
        """Whether the next start of ``image`` starts its kernel: while the floor is short of kernels."""
        floor = self._demand[image].size.min if image in self._demand else 0
        return (
            self.with_kernel
            and self.has_kernel(image)
            and len(self._ready[image].with_kernel) + self._starting_kernels[image] < floor
        )

    async def _start_one(self, image: str, with_kernel: bool) -> None:
        counters = self._counters[image]
        try:
            sandbox = await self._factory.create(image, self.limits, with_kernel=with_kernel, pool=True)
        except EngineError as exc:
            counters.failed += 1
            counters.failures_in_a_row += 1
            counters.last_error = str(exc)
            # Back off: never spin on a broken image.
            delay = min(30.0, 0.5 * 2**counters.failures_in_a_row)
            counters.retry_at = asyncio.get_running_loop().time() + delay
            log.error("pool: could not start a %s sandbox (next try in %g s): %s", image, delay, exc)
            return
        finally:
            self._starting[image] -= 1
            self._starting_kernels[image] -= with_kernel
        counters.failures_in_a_row = 0
        counters.started += 1
        if self._closing or len(self._ready[image]) >= self.target(image):  # shrunk meanwhile
            await self._factory.destroy(sandbox)
        else:
            self._ready[image].add(sandbox)
        self._history[image].append((time.time(), len(self._ready[image])))
