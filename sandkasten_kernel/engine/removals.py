"""Removing destroyed sandboxes off the caller's path.

A destroy makes a session unreachable at once: the store forgets it (its id is
refused), the host's connections to its runner close, and its runner, the
container's init, is killed (``sandbox_init``), taking every process of the
sandbox with it. What costs Docker a few hundred milliseconds, removing the
container and its mounts, happens here, a few at a time, retried while Docker
fails. A crash loses nothing: the container keeps its labels, and the next
start's reconcile removes every container of this state directory that no
session owns.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

from .errors import EngineError
from .sandboxes import Sandbox, SandboxFactory

log = logging.getLogger("sandkasten.removals")
PARALLEL_REMOVALS = 4  # Docker serialises much of a removal; more at once only queue inside it
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s until it is gone


class Removals:
    """Sandboxes whose sessions are gone, being removed in the background."""

    def __init__(self, factory: SandboxFactory) -> None:
        self._factory = factory
        self._slots = asyncio.Semaphore(PARALLEL_REMOVALS)
        self._pending: dict[str, asyncio.Task[None]] = {}  # by container id

    def remove(self, sandbox: Sandbox) -> None:
        """Kill the sandbox's processes now, and remove its container and run directory soon."""
        sandbox.kill()
        if sandbox.container_id not in self._pending:
            task = asyncio.create_task(self._remove(sandbox), name="sandkasten-remove-%s" % sandbox.id)
            self._pending[sandbox.container_id] = task
            task.add_done_callback(lambda _: self._pending.pop(sandbox.container_id, None))

    @property
    def pending(self) -> int:
        """Removals queued or under way."""
        return len(self._pending)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Wait until every removal queued so far is done; False if ``timeout_s`` passed first."""
        tasks = list(self._pending.values())
        if not tasks:
            return True
        _, unfinished = await asyncio.wait(tasks, timeout=timeout_s)
        return not unfinished

    async def close(self, timeout_s: float = 60.0) -> None:
        """Finish the removals under way; any left after ``timeout_s`` go at the next reconcile."""
        if not await self.drain(timeout_s):
            log.warning("%d sandboxes not removed yet; the next start removes them", self.pending)
            for task in list(self._pending.values()):
                task.cancel()

    async def _remove(self, sandbox: Sandbox) -> None:
        for attempt in itertools.count():
            try:
                async with self._slots:
                    await self._factory.destroy(sandbox)
                return
            except EngineError as exc:  # Docker busy or restarting: the container must still go
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.warning("removing sandbox %s failed (%s); retrying in %g s", sandbox.id, exc, delay)
                await asyncio.sleep(delay)
