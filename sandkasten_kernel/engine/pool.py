"""The warm pool: running sandboxes per image, handed out without a container start.

A claim pops a ready sandbox and checks its runner with one handshake; it never
waits for a refill. A background task keeps each image at its target, one
sandbox at a time (this is a 2-core machine: parallel starts only slow each
other down). Targets change at run time with ``resize``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from .errors import EngineError
from .sandbox_spec import SandboxLimits
from .sandboxes import LABEL_POOL, LABEL_SESSION, Sandbox, SandboxFactory

log = logging.getLogger("sandkasten.pool")
HISTORY_POINTS = 300  # ready counts, one per refill pass, for the dashboard's sparkline


@dataclass
class PoolCounters:
    """Claims, misses, starts and failures of one image's warm pool, for the status report."""

    claims: int = 0
    misses: int = 0
    started: int = 0
    failed: int = 0
    last_error: str | None = None


class WarmPool:
    """Keeps running sandboxes ready per image and hands them out without a container start."""

    def __init__(self, factory: SandboxFactory, limits: SandboxLimits, with_kernel: bool) -> None:
        self._factory = factory
        self.limits = limits
        self.with_kernel = with_kernel
        self._ready: dict[str, collections.deque[Sandbox]] = collections.defaultdict(collections.deque)
        self._targets: dict[str, int] = {}
        self._counters: dict[str, PoolCounters] = collections.defaultdict(PoolCounters)
        self._history: dict[str, collections.deque[tuple[float, int]]] = collections.defaultdict(
            lambda: collections.deque(maxlen=HISTORY_POINTS)
        )
        self._starting: dict[str, int] = collections.defaultdict(int)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, targets: dict[str, int]) -> None:
        """Begin keeping ``targets`` (warm sandboxes per image) ready, in a background task."""
        self._targets = dict(targets)
        self._task = asyncio.create_task(self._refill_loop(), name="sandkasten-pool")

    async def close(self) -> None:
        """Stop refilling and remove every warm sandbox.

        A start under way is let finish (and then removed) rather than cancelled,
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
        for queue in self._ready.values():
            while queue:
                await self._factory.destroy(queue.popleft())

    # -- claims ----------------------------------------------------------------------

    async def claim(self, image: str) -> Sandbox | None:
        """A ready sandbox of ``image``, or None (a miss) when there is none."""
        queue = self._ready[image]
        counters = self._counters[image]
        while queue:
            sandbox = queue.popleft()
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
        self._wake.set()
        return None

    async def drop_unless_running(self, running: set[str]) -> None:
        """Forget ready sandboxes whose container is not among ``running`` (the refill replaces them)."""
        for image, queue in self._ready.items():
            dead = [sandbox for sandbox in queue if sandbox.container_id not in running]
            for sandbox in dead:
                queue.remove(sandbox)
                log.warning("warm sandbox %s of %s stopped; replacing it", sandbox.id, image)
                await self._factory.destroy(sandbox)
            if dead:
                self._wake.set()

    # -- targets ---------------------------------------------------------------------

    async def resize(self, image: str, target: int) -> None:
        """Set ``image``'s target at run time; ready sandboxes beyond it are removed at once."""
        if target < 0:
            raise EngineError("a pool target must be 0 or more, not %d" % target)
        self._targets[image] = target
        queue = self._ready[image]
        while len(queue) > target:
            await self._factory.destroy(queue.pop())
        self._wake.set()

    async def ready_in_docker(self, claimed: set[str]) -> dict[str, int]:
        """Warm sandboxes per image as Docker shows them, whichever process's pool started them."""
        ready: collections.Counter[str] = collections.Counter()
        for container in await self._factory.backend.containers(self._factory.own_label):
            image = container.labels.get(LABEL_POOL)
            if image is not None and container.running and container.labels.get(LABEL_SESSION) not in claimed:
                ready[image] += 1
        return dict(ready)

    def status(self) -> dict[str, dict[str, Any]]:
        """Per image: target, ready and starting counts, counters and ready-count history, for the dashboard."""
        images = set(self._targets) | {image for image, queue in self._ready.items() if queue}
        result = {}
        for image in sorted(images):
            counters = self._counters[image]
            result[image] = {
                "target": self._targets.get(image, 0),
                "ready": len(self._ready[image]),
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

    def _short_of(self) -> str | None:
        """The image furthest below its target, if any."""
        gaps = {image: target - len(self._ready[image]) for image, target in self._targets.items()}
        image = max(gaps, key=lambda name: gaps[name], default=None)
        return image if image is not None and gaps[image] > 0 else None

    async def _refill_loop(self) -> None:
        failures = 0
        while not self._closing:
            image = self._short_of()
            if image is None:
                for name in self._targets:
                    self._history[name].append((time.time(), len(self._ready[name])))
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=5.0)
                continue
            self._starting[image] += 1
            try:
                sandbox = await self._factory.create(image, self.limits, with_kernel=self.with_kernel, pool=True)
            except EngineError as exc:
                failures += 1
                self._counters[image].failed += 1
                self._counters[image].last_error = str(exc)
                log.error("pool: could not start a %s sandbox: %s", image, exc)
                with contextlib.suppress(asyncio.TimeoutError):  # back off; never spin on a broken image
                    await asyncio.wait_for(self._wake.wait(), timeout=min(30.0, 0.5 * 2**failures))
                continue
            finally:
                self._starting[image] -= 1
            failures = 0
            self._counters[image].started += 1
            if self._closing or len(self._ready[image]) >= self._targets.get(image, 0):  # shrunk meanwhile
                await self._factory.destroy(sandbox)
            else:
                self._ready[image].append(sandbox)
            self._history[image].append((time.time(), len(self._ready[image])))
