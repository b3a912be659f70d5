"""Pause and resume: a session's sandbox frozen whole by the cgroup freezer (``docker pause``), then thawed.

A paused sandbox uses no CPU and nothing in it runs; its shell, background jobs,
kernel and files stay exactly as they were, and its ttl and idle clocks stand
still. Its memory stays too. The alternative, CRIU through Docker's checkpoints,
would write the memory to disk, but it does not work here, and would not fit if it
did: Docker needs its experimental mode for it (a dockerd restart), Debian 12's
CRIU 3.17 cannot dump on kernels >= 6.13 (their ``[vvar_vclock]`` mapping; fixed
in CRIU 4.1), the host holds Unix-socket connections into every sandbox (the
runner's control socket, the kernel's ZMQ sockets) that CRIU refuses without
``--ext-unix-sk``, which Docker does not pass, and a checkpoint restores only into
the same container. Squeezing a frozen cgroup's memory limit gives back only its
page cache, which the kernel reclaims under pressure anyway; with no swap (and
``memswap_limit == mem_limit``) the rest stays. So: the freezer, memory kept.

What a pause means for the rest of the engine:

- No call reaches the runner: a frozen runner would leave it hanging until the
  resume. ``RunnerConnections`` lends nothing for a session this engine paused,
  and the store's ``paused`` status refuses the calls of any other process's
  engine too (``SessionPaused``, 409 ``session_paused``).
- What the host is asked about it is answered from the host: ``usage`` from
  Docker, the kernel's status as the runner gave it just before the pause (so
  Jupyter's restarter, polling, never takes a frozen kernel for a dead one).
- A pause is refused while calls are under way (``SessionBusy``): a foreground
  exec's timeout runs on the sandbox's monotonic clock, which goes on while it is
  frozen, so the exec would come back "timed out". Kernel cells and background
  jobs simply stop and go on after the resume.
- Its clocks: the reaper skips a paused session, and the resume moves its
  ``last_active`` and ``paused_s`` past the pause (``Store.mark_running``).
- Docker's word is the truth: a start finds sandboxes paused or thawed behind the
  server's back and records them so (``adopt``). A pause or resume of a session
  already so still makes sure Docker agrees.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from .connections import RunnerConnections
from .docker_backend import ContainerInfo, DockerBackend
from .errors import RunnerRequestError, RunnerUnavailable, SessionBusy, SessionNotFound, SessionPaused
from .runner_client import RunnerClient
from .store import SessionRecord, Store

log = logging.getLogger("sandkasten.engine")
# How long a pause waits for the kernel's status from the runner (a runner that does not answer is paused anyway).
KERNEL_STATUS_WAIT_S = 2.0

Lend = Callable[[SessionRecord], contextlib.AbstractAsyncContextManager[RunnerClient]]


class Pausing:
    """Pauses and resumes sessions, and answers for them while they are paused (see the module docstring)."""

    def __init__(self, store: Store, backend: DockerBackend, connections: RunnerConnections, lend: Lend) -> None:
        self.store = store
        self.backend = backend
        self.connections = connections
        self.lend = lend
        # Work on a session the engine does not see as runner calls (the server's run_code on its kernel):
        # each probe says whether some is under way.
        self.busy_probes: list[Callable[[SessionRecord], bool]] = []
        self._kernels: dict[str, dict[str, Any] | None] = {}  # the kernel's status at the pause, by session
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)

    def is_paused(self, record: SessionRecord) -> bool:
        """Whether the session is paused (or being paused): its runner must not be called."""
        return record.status == "paused" or self.connections.frozen(record.id)

    def refuse(self, record: SessionRecord) -> None:
        """Raise ``SessionPaused`` if the session is paused."""
        if self.is_paused(record):
            raise SessionPaused.of(record.id)

    def _record(self, session_id: str) -> SessionRecord:
        """The session's record as it is now (another pause or resume may have ended meanwhile)."""
        record = self.store.get_session(session_id)
        if record is None:
            raise SessionNotFound("no session %r" % session_id)
        return record

    async def pause(self, session_id: str) -> None:
        """Freeze the session's sandbox; ``SessionBusy`` while calls to it are under way."""
        async with self._locks[session_id]:
            record = self._record(session_id)
            if self.is_paused(record):  # paused already: make sure Docker agrees
                self.connections.freeze(record.id)
                await self.backend.set_paused(record.container_id, True)
                return
            kernel = await self._kernel_now(record)
            if self.connections.under_way(record.id) or any(probe(record) for probe in self.busy_probes):
                raise SessionBusy(
                    "session %s has calls under way (exec, files, run_code): pause it once they are done" % record.id
                )
            self.connections.freeze(record.id)  # from here on, no call starts
            started = time.monotonic()
            try:
                await self.backend.set_paused(record.container_id, True)
            except BaseException:
                self.connections.thaw(record.id)
                raise
            took_ms = round((time.monotonic() - started) * 1000, 1)
            try:
                self.store.mark_paused(record.id, time.time(), kernel=kernel, took_ms=took_ms)
            except BaseException:
                with contextlib.suppress(Exception):  # not recorded, so not paused: thaw it again
                    await self.backend.set_paused(record.container_id, False)
                self.connections.thaw(record.id)
                raise
            self._kernels[record.id] = kernel

    async def resume(self, session_id: str) -> None:
        """Thaw the session's sandbox and start its clocks again; a session not paused is left as it is."""
        async with self._locks[session_id]:
            record = self._record(session_id)
            started = time.monotonic()
            await self.backend.set_paused(record.container_id, False)
            took_ms = round((time.monotonic() - started) * 1000, 1)
            self.store.mark_running(record.id, time.time(), took_ms=took_ms)
            self.connections.thaw(record.id)
            self._kernels.pop(record.id, None)

    async def _kernel_now(self, record: SessionRecord) -> dict[str, Any] | None:
        """The kernel's status from the runner, just before a pause; None if the runner does not say in time."""

        async def ask() -> dict[str, Any]:
            async with self.lend(record) as runner:
                return await runner.kernel_status()

        try:
            return await asyncio.wait_for(ask(), KERNEL_STATUS_WAIT_S)
        except (RunnerUnavailable, RunnerRequestError, asyncio.TimeoutError) as exc:
            log.warning("pausing %s: the runner did not give its kernel's status (%r)", record.id, exc)
            return None

    def kernel_status(self, record: SessionRecord) -> dict[str, Any]:
        """The paused session's kernel as it was at the pause, with ``paused: true``.

        Unknown (the runner did not say, or Docker paused it): alive, which is
        what a frozen kernel is; Jupyter's restarter then leaves it alone.
        """
        known = self._kernels.get(record.id)
        if known is None:
            event = self.store.latest_event(record.id, "paused")
            known = event.detail.get("kernel") if event is not None else None
        status: dict[str, Any] = dict(known) if isinstance(known, dict) else {"alive": True, "started": True}
        status["paused"] = True
        return status

    async def usage(self, record: SessionRecord) -> dict[str, Any]:
        """The paused sandbox's processes, memory and CPU time, from Docker (its runner cannot answer)."""
        usage = await self.backend.frozen_usage(record.container_id)
        return dict(usage, paused=True, sampled_at=time.time())

    def adopt(self, record: SessionRecord, container: ContainerInfo) -> None:
        """Take Docker's word on a session found at start: frozen or not, whatever the store said."""
        if container.paused:
            self.connections.freeze(record.id)
            self.store.mark_paused(record.id, time.time(), reason="found paused in Docker")
        elif record.status == "paused":
            self.store.mark_running(record.id, time.time(), reason="found running in Docker (unpaused behind its back)")

    def forget(self, session_id: str) -> None:
        """Drop what is kept of a session that is gone."""
        self._kernels.pop(session_id, None)
        lock = self._locks.get(session_id)
        if lock is not None and not lock.locked():
            del self._locks[session_id]
