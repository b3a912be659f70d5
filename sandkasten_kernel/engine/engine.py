"""The engine: sessions on top of sandboxes, the warm pool, the store and workspaces.

A session is a claimed sandbox plus its record in the store. The handlers and
the kernel provisioner call this class; it never imports tornado or Jupyter
Server, and only ``docker_backend`` talks to Docker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncGenerator
from typing import Any

from .cold_starts import ColdStartGate
from .config import Settings, runtime_tag
from .connections import RunnerConnections
from .custom_images import CustomImages
from .docker_backend import DockerBackend, connect, remove_sandbox_by_id
from .egress_gateway import EgressGateway
from .egress_policy import DomainPolicy
from .errors import (
    ConfigError,
    EngineError,
    ImageInUse,
    LimitExceeded,
    QuotaExceeded,
    RunnerUnavailable,
    SessionLost,
    SessionNotFound,
    StoreError,
)
from .images import IMAGES
from .kernel_access import grant_kernel_access
from .kernel_connection import kernel_socket_names
from .pausing import Pausing
from .pool import WarmPool
from .pool_demand import PoolSize
from .pool_scheduler import PoolScheduler
from .reaper import Reaper
from .removals import Removals
from .runner_client import ExecResult, RunnerClient
from .runner_terminal import RunnerTerminal
from .sandbox_network import EgressPolicy
from .sandbox_spec import EgressAttachment, SandboxLimits
from .sandboxes import LABEL_SESSION, Sandbox, SandboxFactory, new_sandbox_id
from .session_ask import LIMIT_NAMES, SessionAsk, check_ask, checked_ttl, default_limits
from .session_env import give_session_env
from .session_jobs import SessionProcesses
from .snapshot_files import remove_tree
from .snapshots import Capture, Snapshots
from .store import Event, SessionRecord, SnapshotRow, open_state_store
from .workspace_disks import WorkspaceDisks
from .workspace_names import WorkspaceRef
from .workspaces import Workspaces

log = logging.getLogger("sandkasten.engine")
MAX_FORKS = 16  # sessions one fork makes


class Engine:
    """Sessions on sandboxes: create, use, reap and destroy them, with the warm pool, the store and workspaces."""

    def __init__(self, settings: Settings, backend: DockerBackend | None = None) -> None:
        self.settings = settings
        egress = EgressPolicy.of(settings.security.egress_allow, settings.security.egress_deny)
        self.backend = backend or DockerBackend(connect(), egress)
        state_dir = settings.server.state_dir
        self.store = open_state_store(state_dir)
        # The images added to this state directory: sessions, the pool and kernelspecs name them from now on.
        self.images = CustomImages(self.store, self.backend.client, progress=lambda line: None)
        settings.added = self.images.catalog
        self.factory = SandboxFactory(self.backend, state_dir, settings.security.runtime)
        self.workspace_disks = WorkspaceDisks(state_dir, settings.workspace.size_mb)
        pool = settings.pool
        self.pool = WarmPool(
            self.factory, self.default_limits(), pool.with_kernel, pool.parallel_starts, pool.shrink_after_s
        )
        self.pool.has_kernel = settings.image_has_kernel  # an added image without ipykernel warms up bare
        self.pool_schedule = PoolScheduler(self.pool, settings)  # pool.schedule: sizes that follow the clock
        self.pool_schedule.on_fire = lambda firing: self.store.add_event(
            None, "pool_scheduled", **firing.entry.describe()
        )
        self._sandboxes: dict[str, Sandbox] = {}
        self.removals = Removals(self.factory)  # destroyed sessions' containers, going in the background
        self.egress = EgressGateway(state_dir, settings.security, self.backend.client, self.store)
        self.workspaces = Workspaces(
            state_dir, self.store, self.backend, self.workspace_disks, self.removals, settings.quota
        )
        self.reaper = Reaper(
            self.store, self.backend, self.factory.own_label, self.pool, settings.session, self.destroy_session
        )
        self.reaper.each_round.append(self.egress.note_refusals)
        # What the server adds to reaping: probes of use the engine does not see, hooks run before a reap.
        self.activity_probes = self.reaper.activity_probes
        self.before_reap = self.reaper.before_reap
        # Sessions being created, per owner, and cold starts under way: counted
        # against the quotas so that concurrent creates cannot overshoot them.
        self._creating: collections.Counter[str] = collections.Counter()
        self._cold_starts = ColdStartGate()
        self.pool.cold_starts_running = lambda: self._cold_starts.running > 0
        self._connections = RunnerConnections()
        self.pausing = Pausing(self.store, self.backend, self._connections, self._lend)
        # What the server adds to pausing: probes of work under way that the engine does not see (run_code).
        self.busy_probes = self.pausing.busy_probes
        self.snapshots = Snapshots(
            state_dir, self.store, self.backend, self.pausing, self.workspace_disks, settings.quota
        )
        self.processes = SessionProcesses(self)  # processes beside each session's shell
        self.activity_probes.append(self.processes.last_activity)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self, pool: bool = True, reaper: bool = True, reconcile: bool = True) -> dict[str, Any]:
        """Reconcile the store with Docker, then start the pool and the reaper.

        Only the engine that owns the state directory (the server's) reconciles:
        another process's engine (a kernel provisioner in an agent script, say)
        must not remove containers it does not know.
        """
        await self._check_runtime()
        report = await self.reconcile() if reconcile else {}
        if pool and self.settings.pool.enabled:
            self.pool_schedule.start()  # the pool, with the sizes that hold now
        if reaper:
            self.reaper.start()
        return report

    async def _check_runtime(self) -> None:
        """Refuse to start on a runtime Docker does not know, rather than fail every sandbox later."""
        runtime = self.settings.security.runtime
        if runtime:
            known = await self.backend.runtimes()
            if runtime not in known:
                raise ConfigError(
                    "security.runtime is %r, but Docker knows only %s: install it and register it in "
                    '/etc/docker/daemon.json ("runtimes"), then restart dockerd' % (runtime, ", ".join(sorted(known)))
                )

    async def close(self) -> None:
        """Stop background work and the warm pool. Sessions keep running: a new engine re-adopts them."""
        await self.reaper.close()
        await self.pool_schedule.close()
        await self.pool.close()
        await self.removals.close()
        await asyncio.to_thread(self.egress.close)
        self._connections.close()
        self.store.close()

    async def reconcile(self) -> dict[str, Any]:
        """Make the store and Docker agree. Workspace volumes are never touched."""
        own = await self.backend.containers(self.factory.own_label)  # never another server's sandboxes
        containers = {c.labels.get(LABEL_SESSION): c for c in own}
        report: dict[str, list[str]] = {"adopted": [], "lost": [], "removed_containers": [], "removed_run_dirs": []}
        for record in self.store.list_sessions():
            container = containers.pop(record.id, None)
            if container is not None and container.running:
                self._sandbox(record)
                self.pausing.adopt(record, container)  # Docker's word on whether it is frozen
                report["adopted"].append(record.id)
            else:
                if container is not None:
                    await self.backend.remove(container.id)
                self._forget(record, "lost: its container %s" % ("stopped" if container else "is gone"))
                report["lost"].append(record.id)
        for sandbox_id, container in containers.items():
            # Warm sandboxes of an earlier engine, or starts that never finished.
            await self.backend.remove(container.id)
            report["removed_containers"].append(container.name)
            self.factory.forget(sandbox_id or "-", self.factory.run_dir(sandbox_id or "-"))
        for name in os.listdir(self.factory.sandboxes_dir):
            if name not in self._sandboxes:
                self.factory.forget(name, self.factory.run_dir(name))
                report["removed_run_dirs"].append(name)
        report["removed_snapshot_dirs"] = await asyncio.to_thread(self.snapshots.sweep)
        if any(report.values()):
            self.store.add_event(None, "reconciled", **report)
        await asyncio.to_thread(self.egress.resume, self.store.list_sessions())
        return report

    # -- sessions ----------------------------------------------------------------------

    def default_limits(self) -> SandboxLimits:
        """The configured default limits, for sessions that ask for none and for the warm pool."""
        return default_limits(self.settings)

    async def create_session(
        self,
        image: str | None = None,
        workspace: str | None = None,
        env: dict[str, str] | None = None,
        limits: dict[str, Any] | None = None,
        network: bool | dict[str, Any] | None = None,
        ttl_s: int | None = None,
        owner: str | None = None,
        workspace_owner: str | None = None,
        wants_kernel: bool = False,
        snapshot: str | None = None,
        labels: dict[str, str] | None = None,
        idle_timeout_s: int | None = None,
    ) -> SessionRecord:
        """Claim a warm sandbox, or start one cold when none fits or the pool is empty.

        ``owner`` holds the session (quotas count per owner); ``workspace`` names a
        workspace of ``workspace_owner`` (None: the server's own), made if missing.
        ``wants_kernel``: the caller starts the kernel next, so a warm sandbox whose
        kernel runs is taken first (``pool``). ``network``: true for what the
        configuration allows, or a domain policy ``{"allow": [...], "deny": [...]}``
        within it (``egress_policy``). ``snapshot`` names one of ``workspace_owner``'s
        snapshots to start from (``snapshots``). ``labels`` are the caller's names for the session;
        ``idle_timeout_s`` may shorten the configured idle timeout, or be 0 (none) under a ttl.
        """
        ask = SessionAsk(
            image, workspace, env, limits, network, ttl_s, owner, workspace_owner, wants_kernel, labels, idle_timeout_s
        )
        if snapshot is None:
            return await self._create(ask)
        return await self._create_from(self.snapshots.as_capture(self.snapshots.get(snapshot, workspace_owner)), ask)

    async def _create_from(self, source: Capture, ask: SessionAsk) -> SessionRecord:
        """A session holding the snapshot's files (``Snapshots.session_ask`` says with what)."""
        ask, new_workspace = await self.snapshots.session_ask(source, ask, self.settings.workspace.enabled)
        try:
            return await self._create(ask, source)
        except BaseException:
            if new_workspace is not None:
                self.snapshots.unplace_workspace(new_workspace)
            raise

    async def _create(self, ask: SessionAsk, source: Capture | None = None) -> SessionRecord:
        checked = check_ask(self.settings, self.factory.state_dir, ask)
        named, env, owner = checked.workspace, checked.env, ask.owner
        owner_key = owner or ""
        self._check_quota(owner_key)
        self._creating[owner_key] += 1
        egress: EgressAttachment | None = None
        try:
            if checked.policy is None:
                sandbox = await self._claim_or_start(
                    checked.image, checked.limits, checked.network, named, env, ask.wants_kernel
                )
            else:
                sandbox, egress = await self._start_behind_proxy(
                    checked.image, checked.limits, named, env, checked.policy
                )
            await self._prepare(sandbox, env, source)
            now = time.time()
            record = SessionRecord(
                id=sandbox.id,
                container_id=sandbox.container_id,
                image=checked.image,
                workspace=ask.workspace,
                run_dir=sandbox.run_dir,
                status="running",
                created_at=now,
                last_active=now,
                ttl_s=checked.ttl_s,
                idle_timeout_s=checked.idle_timeout_s,
                limits=checked.recorded_limits(),
                network=checked.network,
                env=env,
                owner=owner,
                warm=sandbox.warm,
                workspace_owner=ask.workspace_owner if named else None,
                egress=checked.policy.as_json() if checked.policy else None,
                egress_ip=egress.ip if egress else None,
                labels=checked.labels,
            )
            try:
                self.store.add_session(record)
            except EngineError:
                await self.factory.destroy(sandbox)
                raise
        finally:
            self._creating[owner_key] -= 1
            if egress is not None:
                self.egress.settle(egress.ip)  # in the store now, or gone
        if named is not None:
            self.store.add_event(record.id, "workspace_used", workspace=named.name, owner=named.owner)
        self._sandboxes[record.id] = sandbox
        return record

    async def _start_behind_proxy(
        self,
        image: str,
        limits: SandboxLimits,
        workspace: WorkspaceRef | None,
        env: dict[str, str],
        policy: DomainPolicy,
    ) -> tuple[Sandbox, EgressAttachment]:
        """A cold start on the filtering proxy's network (never a warm sandbox: those have no network)."""
        sandbox_id = new_sandbox_id()
        egress = await self.egress.attach(sandbox_id, policy)
        try:
            sandbox = await self._start_cold(image, limits, True, workspace, env, egress=egress, sandbox_id=sandbox_id)
        except BaseException:
            self.egress.settle(egress.ip)
            raise
        return sandbox, egress

    def _check_quota(self, owner: str, more: int = 1) -> None:
        """Refuse ``more`` new sessions of ``owner`` beyond the quotas."""
        quota = self.settings.quota
        sessions = self.store.list_sessions()
        total = len(sessions) + sum(self._creating.values()) + more - 1
        if quota.max_sessions and total >= quota.max_sessions:
            raise QuotaExceeded("the server holds %d sessions, its limit (quota.max_sessions)" % quota.max_sessions)
        mine = sum(1 for record in sessions if (record.owner or "") == owner) + self._creating[owner] + more - 1
        if quota.max_sessions_per_user and mine >= quota.max_sessions_per_user:
            raise QuotaExceeded(
                "you hold %d sessions, the limit per user (quota.max_sessions_per_user); destroy one first"
                % quota.max_sessions_per_user
            )

    async def _claim_or_start(
        self,
        image: str,
        limits: SandboxLimits,
        network: bool,
        workspace: WorkspaceRef | None,
        env: dict[str, str],
        wants_kernel: bool,
    ) -> Sandbox:
        """A warm sandbox if one fits, else a cold start, within the cold-start limit."""
        poolable = workspace is None and not network and limits == self.pool.limits
        if poolable and self.settings.pool.enabled:
            sandbox = await self.pool.claim(image, wants_kernel)
            if sandbox is not None:
                sandbox.warm = True
                return sandbox
        return await self._start_cold(image, limits, network, workspace, env)

    async def _start_cold(
        self,
        image: str,
        limits: SandboxLimits,
        network: bool,
        workspace: WorkspaceRef | None,
        env: dict[str, str],
        egress: EgressAttachment | None = None,
        sandbox_id: str | None = None,
    ) -> Sandbox:
        """A new sandbox (``SandboxFactory.create``), within the cold-start limit."""
        quota = self.settings.quota
        async with self._cold_starts.slot(quota.max_cold_starts, quota.cold_start_wait_s):
            if workspace is not None:
                await self.workspaces.ensure(workspace)
            return await self.factory.create(
                image, limits, network, workspace, env, egress=egress, sandbox_id=sandbox_id
            )

    async def _prepare(self, sandbox: Sandbox, env: dict[str, str], source: Capture | None) -> None:
        """Make the new sandbox the session's: the snapshot's files, then (warm) the session's env.
        The sandbox goes if that fails."""
        try:
            if source is not None:
                async with await sandbox.connect() as runner:
                    await self.snapshots.restore_files(source, runner)
                    if (await runner.kernel_status())["alive"]:
                        # It started before the restored packages were there (Python looks for the user's
                        # site-packages once, at start): it starts again when first used, finding them.
                        await runner.kernel_shutdown()
            if sandbox.warm and env:  # after the restore: a restored home restarts the shell
                async with await sandbox.connect() as runner:
                    await give_session_env(runner, sandbox.kernel, env)
        except BaseException:
            await asyncio.shield(self.factory.destroy(sandbox))
            raise

    def note_egress_refusals(self) -> None:
        """Bring the sessions' counts of refused connections up to date (the reaper does it every round)."""
        self.egress.note_refusals()

    def get_session(self, session_id: str) -> SessionRecord:
        """The session's record; raises ``SessionNotFound`` when there is none."""
        record = self.store.get_session(session_id)
        if record is None:
            raise SessionNotFound("no session %r" % session_id)
        return record

    def list_sessions(self) -> list[SessionRecord]:
        """Every session's record, oldest first."""
        return self.store.list_sessions()

    async def destroy_session(self, session_id: str, reason: str = "requested", wait: bool = False) -> None:
        """End the session: from the return on its id is refused and none of its processes runs.

        The container and run directory go in the background (``removals``), unless
        ``wait``: a process about to exit, with no server to tidy up after it, waits.
        """
        record = self.get_session(session_id)
        self.store.remove_session(record.id, reason)  # first: if the store fails, the session stays whole
        sandbox = self._sandboxes.pop(record.id, None) or self._build_sandbox(record)
        self._connections.drop(record.id)
        self.pausing.forget(record.id)  # a paused sandbox goes too: Docker thaws it to kill it
        self.removals.remove(sandbox)
        if record.egress_ip:
            self.egress.sync()  # its policy goes: the address is refused until it is handed out again
        if wait:
            await self.removals.drain()

    def destroy_session_now(self, session_id: str, reason: str) -> None:
        """``destroy_session`` without an event loop (at process exit)."""
        record = self.store.get_session(session_id)
        if record is None:
            return
        remove_sandbox_by_id(self.backend.client, record.container_id)
        self._forget(record, reason)

    def _build_sandbox(self, record: SessionRecord) -> Sandbox:
        """A new ``Sandbox`` for the record, not cached (``_sandbox`` is the cached lookup)."""
        limits = SandboxLimits(**{name: record.limits[name] for name in LIMIT_NAMES})
        return Sandbox(
            record.id, record.container_id, record.image, record.run_dir, limits, record.network, record.workspace
        )

    def _forget(self, record: SessionRecord, reason: str) -> None:
        """Drop what the host keeps of a session whose container is gone."""
        self._connections.drop(record.id)
        self.pausing.forget(record.id)
        sandbox = self._sandboxes.pop(record.id, None)
        if sandbox is not None:
            sandbox.release_init()
        self.factory.forget(record.id, record.run_dir)
        self.store.remove_session(record.id, reason)
        if record.egress_ip:
            self.egress.sync()

    def _sandbox(self, record: SessionRecord) -> Sandbox:
        """The session's sandbox, kept once built (it carries the kernel's connection info)."""
        sandbox = self._sandboxes.get(record.id)
        if sandbox is None:
            sandbox = self._sandboxes[record.id] = self._build_sandbox(record)
        return sandbox

    def expire_in(self, session_id: str, seconds: int) -> SessionRecord:
        """Move the session's end to ``seconds`` from now (its ttl, which time spent paused does not count)."""
        record = self.get_session(session_id)
        paused = time.time() - record.paused_at if record.paused_at is not None else 0.0
        lived = time.time() - record.created_at - record.paused_s - paused
        ttl_s = checked_ttl(self.settings, math.ceil(lived + seconds))
        self.store.update(session_id, ttl_s=ttl_s)
        self.store.add_event(session_id, "ttl_changed", ttl_s=ttl_s)
        return self.get_session(session_id)

    def touch(self, session_id: str, calls: int = 1) -> None:
        """Record use of the session (it is not idle) and count ``calls`` more calls of work on it.

        Best effort: with the store unwritable (disk full, locked) the work itself
        still goes ahead; only the idle clock and the count lag.
        """
        try:
            self.store.touch(session_id, exec_count=calls)
        except StoreError as exc:
            log.warning("could not record activity of session %s: %s", session_id, exc)

    def runner(self, session_id: str, touch: bool = True) -> contextlib.AbstractAsyncContextManager[RunnerClient]:
        """``async with engine.runner(id) as runner``: a connection to the session's runner, lent
        from the ones kept open (or a new one); refreshes last_active unless ``touch`` is false."""
        record = self.get_session(session_id)
        self.pausing.refuse(record)
        if touch:
            self.touch(session_id, calls=0)
        return self._lend(record)

    def _lend(self, record: SessionRecord) -> contextlib.AbstractAsyncContextManager[RunnerClient]:
        """A connection to ``record``'s runner, lent (``runner`` without its checks and touch)."""
        return self._connections.lend(record.id, lambda: self._connect(record))

    async def _connect(self, record: SessionRecord) -> RunnerClient:
        """Connect to ``record``'s runner.

        A container removed behind the engine's back is detected here: the
        session is dropped, with an event saying why, and ``SessionLost`` raised.
        """
        session_id = record.id
        try:
            client = await self._sandbox(record).connect()
        except RunnerUnavailable as exc:
            container = await self.backend.inspect(record.container_id)
            if container is not None and container.running:
                raise
            await self.backend.remove(record.container_id)
            reason = "lost: its container %s" % ("stopped" if container else "was removed")
            self._forget(record, reason)
            raise SessionLost("session %s is gone (%s)" % (session_id, reason)) from exc
        return client

    async def exec(self, session_id: str, command: str, **options: Any) -> ExecResult:
        """Run ``command`` in the session's shell (``RunnerClient.exec`` options) and return its result."""
        async with self.runner(session_id) as runner:
            result = await runner.exec(command, **self._beside_env(session_id, options))
        self.touch(session_id, calls=1)  # counted once it ran; a failed exec is not
        return result

    async def exec_stream(
        self, session_id: str, command: str, **options: Any
    ) -> AsyncGenerator[str | ExecResult, None]:
        """``exec`` with the output yielded as it comes, then the ``ExecResult``."""
        async with self.runner(session_id) as runner:
            async for event in runner.exec_stream(command, **self._beside_env(session_id, options)):
                yield event
        self.touch(session_id, calls=1)

    def _beside_env(self, session_id: str, options: dict[str, Any]) -> dict[str, Any]:
        """Exec options; one that may run beside a busy shell carries the session's environment."""
        if options.get("if_busy") != "process":
            return options
        return {**options, "env": self.session_env(session_id, options.get("env"))}

    def session_env(self, session_id: str, env: dict[str, str] | None) -> dict[str, str]:
        """The session's environment with ``env`` over it, for a process beside the shell. Said outright,
        though the runner starts processes with it already (the container's, or ``set_env``'s): a sandbox
        claimed by a server from before ``set_env`` has it only in its shell."""
        return {**self.get_session(session_id).env, **(env or {})}

    async def usage(self, session_id: str) -> dict[str, Any]:
        """The sandbox's processes, memory and cumulative CPU time (for the dashboard; not use of the session).
        A paused sandbox's come from Docker, with ``paused: true``."""
        record = self.get_session(session_id)
        if self.pausing.is_paused(record):
            return await self.pausing.usage(record)
        async with self.runner(session_id, touch=False) as runner:
            return dict(await runner.usage(), paused=False)

    async def open_terminal(self, session_id: str, rows: int, cols: int) -> RunnerTerminal:
        """An interactive bash of its own in the session's sandbox, next to (never in) the exec shell.
        Closing it kills every process started in it. An open terminal does not keep the session from a pause."""
        record = self.get_session(session_id)
        self.pausing.refuse(record)
        self.touch(session_id, calls=0)
        with self._connections.call(record.id):
            client = await self._connect(record)
            try:
                return await client.open_terminal(rows, cols)
            finally:
                await client.close()  # a no-op once the terminal has the connection

    # -- pause and resume (``pausing``) ---------------------------------------------------

    async def pause_session(self, session_id: str) -> SessionRecord:
        """Freeze the session's sandbox (no CPU, nothing runs, its clocks stop); its record, now ``paused``.

        Refused with ``SessionBusy`` while calls to it are under way; pausing a
        paused session is not an error.
        """
        await self.pausing.pause(session_id)
        return self.get_session(session_id)

    async def resume_session(self, session_id: str) -> SessionRecord:
        """Let the paused session's sandbox run on, as it was; its record, now ``running``. Resuming a
        running session is not an error."""
        await self.pausing.resume(session_id)
        return self.get_session(session_id)

    def require_kernel(self, session_id: str | None = None, image: str | None = None) -> None:
        """Raise ``EngineError`` if the session's image, or ``image`` (a name as a create gives it), has no
        Jupyter kernel (an added image without ipykernel), before anything asks for one."""
        reference = self.get_session(session_id).image if session_id else self.settings.resolve_image(image)
        if not self.settings.image_has_kernel(reference):
            raise EngineError(
                "image %s has no Jupyter kernel (ipykernel is not installed in it)"
                % self.settings.short_image_name(reference)
            )

    def require_running(self, session_id: str) -> None:
        """Raise ``SessionPaused`` if the session is paused (for work that does not go through ``runner``)."""
        self.pausing.refuse(self.get_session(session_id))

    # -- snapshots and forks (``snapshots``) ------------------------------------------------

    async def snapshot_session(self, session_id: str, name: str, owner: str | None = None) -> SnapshotRow:
        """Keep the session's files (home, /tmp, /workspace) as ``owner``'s snapshot ``name``."""
        return await self.snapshots.take(self.get_session(session_id), name, owner)

    def list_snapshots(self, owner: str | None = None, everyone: bool = False) -> list[SnapshotRow]:
        """``owner``'s snapshots (None: the server's own), or everyone's."""
        return self.snapshots.listing(owner, everyone)

    async def delete_snapshot(self, name: str, owner: str | None = None) -> None:
        """Delete ``owner``'s snapshot ``name``; sessions made from it keep their files."""
        await self.snapshots.delete(name, owner)

    async def fork_session(
        self, session_id: str, count: int, owner: str | None = None, workspace_owner: str | None = None
    ) -> list[SessionRecord]:
        """``count`` new sessions (1-MAX_FORKS) holding the session's files as they are now.

        All or none: the quotas are checked for all of them first, and if one
        fails to start, those made already are destroyed.
        """
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_FORKS:
            raise LimitExceeded("a fork makes 1 to %d sessions, not %r" % (MAX_FORKS, count))
        record = self.get_session(session_id)
        self._check_quota(owner or "", more=count)
        source = await self.snapshots.capture(record)
        try:
            ask = SessionAsk(owner=owner, workspace_owner=workspace_owner)
            made = await asyncio.gather(*(self._create_from(source, ask) for _ in range(count)), return_exceptions=True)
        finally:
            await asyncio.to_thread(remove_tree, source.path)
        sessions = [result for result in made if isinstance(result, SessionRecord)]
        failed = [result for result in made if isinstance(result, BaseException)]
        if failed:
            for other in sessions:  # all or none: the new workspaces go too
                await self.destroy_session(other.id, "another of its fork failed", wait=True)
                if other.workspace is not None:
                    with contextlib.suppress(EngineError):
                        await self.delete_workspace(other.workspace, workspace_owner)
            raise failed[0]
        for fork in sessions:
            self.store.add_event(fork.id, "forked", source=record.id)
        return sessions

    # -- the session's Jupyter kernel ---------------------------------------------------

    async def start_kernel(self, session_id: str, kernel_id: str | None = None) -> dict[str, Any]:
        """Host-side connection info of the session's kernel, starting it if it is not running.

        A warm sandbox's kernel is already up: claiming it costs one status call.
        """
        record = self.get_session(session_id)
        self.pausing.refuse(record)
        self.require_kernel(session_id)
        sandbox = self._sandbox(record)
        if sandbox.kernel is None:  # re-attaching: the info this host saved when it started the kernel
            sandbox.kernel = self.factory.saved_kernel_info(sandbox)
        with self._connections.call(record.id):
            async with await self._connect(record) as runner:
                status = await runner.kernel_status()
                if status["alive"] and sandbox.kernel is None:
                    await runner.kernel_shutdown()  # a kernel whose key this host does not know: start anew
                    status = {"alive": False, "started": False}
                if not status["alive"]:
                    await self.factory.start_kernel(sandbox, runner, restart=status["started"])
        if kernel_id is not None:
            self.store.update(session_id, kernel_id=kernel_id)
        assert sandbox.kernel is not None
        return dict(sandbox.kernel)

    async def kernel_status(self, session_id: str) -> dict[str, Any]:
        """The session's kernel status from its runner; a paused session's as it was at the pause."""
        record = self.get_session(session_id)
        if self.pausing.is_paused(record):  # a frozen kernel is not a dead one
            return self.pausing.kernel_status(record)
        # Polled every few seconds by Jupyter's kernel restarter: that is not use of the session.
        async with self.runner(session_id, touch=False) as runner:
            return await runner.kernel_status()

    async def interrupt_kernel(self, session_id: str) -> None:
        """Interrupt the session's kernel (SIGINT)."""
        async with self.runner(session_id) as runner:
            await runner.kernel_interrupt()

    async def stop_kernel(self, session_id: str) -> None:
        """Stop the session's kernel; the sandbox keeps running and the kernel can be started again."""
        async with self.runner(session_id) as runner:
            await runner.kernel_shutdown()

    def grant_kernel(self, session_id: str, uid: int) -> None:
        """Let local user ``uid`` alone (and root) connect to the session's kernel sockets; again after restarts."""
        record = self.get_session(session_id)
        grant_kernel_access(self.factory.state_dir, record.run_dir, kernel_socket_names(), uid)

    def release_kernel(self, session_id: str) -> None:
        """Forget the session's Jupyter kernel id (its kernel manager let go of it)."""
        if self.store.get_session(session_id) is not None:
            self.store.update(session_id, kernel_id=None)

    # -- reaping (``reaper``) -------------------------------------------------------------

    async def reap_once(self) -> list[str]:
        """Destroy the sessions past their ttl or idle timeout; the ids of those destroyed."""
        return await self.reaper.reap_once()

    # -- workspaces (``workspaces``) -----------------------------------------------------

    async def list_workspaces(self) -> list[dict[str, Any]]:
        """Every workspace of this server, each with its owner (None: the server's own)."""
        return await self.workspaces.listing(self.store.list_sessions())

    async def delete_workspace(self, name: str, owner: str | None = None) -> None:
        """Delete ``owner``'s workspace ``name`` (None: the server's own) and its files."""
        await self.workspaces.delete(name, owner, self.store.list_sessions())

    # -- images (``custom_images``) ---------------------------------------------------------

    async def list_images(self) -> list[dict[str, Any]]:
        """The built-in and the added images (``CustomImages.listing``), each with whether sessions may use
        it (``allowed``) and whether a session or the warm pool does (``in_use``)."""
        rows = await asyncio.to_thread(self.images.listing)
        users = await self._image_users()
        for row in rows:
            row["allowed"] = self.settings.allows_image(row["name"])
            row["in_use"] = bool(users.get(row["tag"]))
        return rows

    async def remove_image(self, name: str) -> None:
        """Remove the added image ``name``; refused (``ImageInUse``) while a session, the configured pool
        (``pool.images``, ``pool.schedule``) or a warm sandbox of any process uses it."""
        if name in IMAGES:
            raise EngineError("%r is a built-in image: only added images can be removed" % name)
        self.images.get(name)  # ImageNotFound first
        users = (await self._image_users()).get(runtime_tag(name))
        if users:
            raise ImageInUse("image %r is in use by %s" % (name, ", ".join(users)))
        await self.removals.drain()  # destroyed sessions' containers still hold the image until they are gone
        await asyncio.to_thread(self.images.remove, name)

    async def _image_users(self) -> dict[str, list[str]]:
        """Who uses each image (by reference): sessions, the pool's configuration or targets, warm sandboxes
        in Docker (of whichever process's pool)."""
        users: dict[str, list[str]] = collections.defaultdict(list)
        for record in self.store.list_sessions():
            users[record.image].append("session %s" % record.id)
        pool = self.settings.pool
        named = [*pool.images, *(image for entry in pool.schedule for image in entry["images"])]
        configured = {self.settings.short_image_name(image) for image in named} if pool.enabled else set()
        status = self.pool.status()
        for tag in {runtime_tag(name) for name in configured} | set(status):
            if self.settings.short_image_name(tag) in configured or self.pool.target(tag) > 0:
                users[tag].append("the warm pool (pool.images or pool.schedule)")
            elif status.get(tag, {}).get("starting"):  # shrunk to 0 while a start was under way
                users[tag].append("the warm pool (a sandbox it is starting)")
        for tag, count in (await self.warm_in_docker()).items():
            if count and not users.get(tag):
                users[tag].append("the warm pool (%d sandboxes)" % count)
        return users

    # -- Docker ------------------------------------------------------------------------

    async def docker_version(self) -> dict[str, Any]:
        """Docker's version report (for the health check); raises ``DockerUnavailable`` when it does not answer."""
        return await self.backend.version()

    # -- pool and events ---------------------------------------------------------------

    def pool_status(self) -> dict[str, Any]:
        """This engine's warm pool: targets, ready counts and counters per image."""
        return {
            "enabled": self.settings.pool.enabled,
            "images": self.pool.status(),
            "schedule": self.pool_schedule.status(),
        }

    async def warm_in_docker(self) -> dict[str, int]:
        """Warm sandboxes per image that Docker holds for this state directory, whichever engine's pool made them."""
        return await self.pool.ready_in_docker({record.id for record in self.store.list_sessions()})

    async def resize_pool(self, image: str, size: Any) -> None:
        """Set how many warm sandboxes of ``image`` (an allowed image name) the pool keeps, at run time:
        a count, or ``{"min": N, "max": M}`` (``pool_demand``)."""
        try:
            parsed = PoolSize.parse(size)
        except ValueError as exc:
            raise EngineError("pool size of %r: %s" % (image, exc)) from None
        await self.pool.resize(self.settings.resolve_image(image), parsed)

    def events(self, limit: int = 100, session_id: str | None = None) -> list[Event]:
        """The latest ``limit`` events, newest first, of one session or of all."""
        return self.store.events(limit, session_id)
