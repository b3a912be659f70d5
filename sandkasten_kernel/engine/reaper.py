"""The reaper: ends sessions past their ttl or idle timeout, and drops those whose containers died.

Each reap is a task of its own, so that one sandbox that does not answer (its
kernel's shutdown waits on its runner) holds up only its own reap; the sweep
for lost containers never waits on a sandbox at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from .config import SandkastenSession
from .docker_backend import DockerBackend
from .errors import EngineError, SessionNotFound
from .pool import WarmPool
from .store import SessionRecord, Store

log = logging.getLogger("sandkasten.engine")
# How long the hooks run before a reap (stopping the session's kernel) may take; the sandbox goes anyway.
REAP_HOOK_DEADLINE_S = 30.0

Destroy = Callable[[str, str], Awaitable[None]]


class Reaper:
    """Finds the sessions that are due and destroys them with ``destroy(session_id, reason)``."""

    def __init__(
        self,
        store: Store,
        backend: DockerBackend,
        own_label: str,
        pool: WarmPool,
        session: SandkastenSession,
        destroy: Destroy,
    ) -> None:
        self.store = store
        self.backend = backend
        self.own_label = own_label
        self.pool = pool
        self.session = session  # the live section: a config change applies at the next round
        self.destroy = destroy
        # Use of a session the engine does not see itself (a person in its kernel, through
        # Jupyter Server): each probe returns the time of the latest such use, or None.
        self.activity_probes: list[Callable[[SessionRecord], float | None]] = []
        # Run before a session is reaped (the server stops the session's kernel).
        self.before_reap: list[Callable[[SessionRecord], Awaitable[None]]] = []
        # Cheap bookkeeping run at every round (the egress proxy's refusals).
        self.each_round: list[Callable[[], None]] = []
        self._loop: asyncio.Task[None] | None = None
        self._reaping: dict[str, asyncio.Future[bool]] = {}  # reaps under way, by session: one task each

    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="sandkasten-reaper")

    async def close(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for reap in list(self._reaping.values()):
            reap.cancel()

    def expired(self, now: float | None = None) -> list[tuple[str, str]]:
        """(session id, reason) for sessions past their ttl or idle timeout.

        A paused session's clocks stand still: it is never due, and the time it
        spent paused does not count toward its ttl (its resume moves last_active).
        """
        now = now or time.time()
        due = []
        for record in self.store.list_sessions():
            if record.status == "paused":
                continue
            if record.ttl_s and now - record.created_at - record.paused_s > record.ttl_s:
                due.append((record.id, "ttl of %d s reached" % record.ttl_s))
            elif record.idle_timeout_s and now - self._last_use(record) > record.idle_timeout_s:
                due.append((record.id, "idle for %d s" % record.idle_timeout_s))
        return due

    def _last_use(self, record: SessionRecord) -> float:
        """The latest of the session's own last_active and what each activity probe reports."""
        reported = [probe(record) for probe in self.activity_probes]
        return max([record.last_active, *(when for when in reported if when is not None)])

    async def reap_once(self) -> list[str]:
        """Destroy the sessions past their ttl or idle timeout; the ids of those destroyed."""
        reaps = self._start_reaps()
        done = await asyncio.gather(*reaps.values())
        return [session_id for session_id, reaped in zip(reaps, done, strict=True) if reaped]

    def _start_reaps(self) -> dict[str, asyncio.Future[bool]]:
        """A task per expired session not already being reaped."""
        for session_id, reason in self.expired():
            if session_id not in self._reaping:
                reap = self._reaping[session_id] = asyncio.ensure_future(self._reap(session_id, reason))
                reap.add_done_callback(functools.partial(self._reap_done, session_id))
        return dict(self._reaping)

    def _reap_done(self, session_id: str, _: asyncio.Future[bool]) -> None:
        self._reaping.pop(session_id, None)

    async def _reap(self, session_id: str, reason: str) -> bool:
        try:
            record = self.store.get_session(session_id)
            if record is None:
                return False
            for hook in self.before_reap:
                try:
                    await asyncio.wait_for(hook(record), REAP_HOOK_DEADLINE_S)
                except Exception as exc:  # a hook that fails or hangs must not keep the sandbox alive
                    log.warning("reaping %s: a hook failed (%r); removing the sandbox anyway", session_id, exc)
            await self.destroy(session_id, reason)
        except SessionNotFound:
            return False
        except EngineError as exc:
            log.error("reaper: session %s: %s", session_id, exc)
            return False
        return True

    async def sweep_lost(self) -> list[str]:
        """Drop the sessions and warm sandboxes whose containers stopped or vanished (a runner
        killed, Docker restarted): one listing of this engine's containers, an event per loss.

        Without it a lost session would only be noticed when someone next used it.
        """
        running = {c.id for c in await self.backend.containers(self.own_label) if c.running}
        lost = []
        for record in self.store.list_sessions():
            if record.container_id not in running:
                if await self._still_there(record.container_id):
                    continue  # started after the listing
                with contextlib.suppress(SessionNotFound):  # destroyed meanwhile
                    await self.destroy(record.id, "lost: its container stopped (the runner died, or Docker restarted)")
                    lost.append(record.id)
        await self.pool.drop_unless_running(running)
        return lost

    async def _still_there(self, container_id: str) -> bool:
        container = await self.backend.inspect(container_id)
        return container is not None and container.running

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.session.reap_interval_s)
            try:
                for task in self.each_round:
                    task()
                self._start_reaps()  # not awaited: the sweep below never waits on a sandbox
                lost = await self.sweep_lost()
                if lost:
                    log.warning("sessions lost with their containers: %s", ", ".join(lost))
            except EngineError as exc:
                log.error("reaper: %s", exc)
