"""Snapshots: everything a session can write, kept under a name, and new sessions made from it.

A snapshot holds the session's home directory (``pip install --user``, dotfiles),
``/tmp`` and ``/workspace``, taken in one freeze of the sandbox (``pausing``), so
the three agree with each other. Processes are not kept: a checkpoint of them
would need CRIU, which does not work here (see ``pausing``). A session made from
a snapshot starts fresh processes on those files: a new shell that reads the
restored dotfiles, and its kernel, if one runs, restarted to find the restored
packages.

Where the files go, under ``<state_dir>/snapshots/`` (root's, 0700), each
snapshot in ``[users/<tag>/]<name>/``, named within its owner as workspaces are
(``workspace_names``): ``home.tar``, ``tmp.tar``, and ``workspace.tar`` or, for a
named workspace on a disk image, ``workspace.img`` (``snapshot_files``). What it
was taken from (image, limits, network) is in the store, which is the list of
snapshots: a directory the store does not know is a capture that never finished,
and goes at the next start.

A session from a snapshot gets the snapshot's image, limits and network unless it
asks for others, and its workspace goes to a new place: the tmpfs /workspace of a
warm sandbox, or a new named workspace (cold start) when the snapshot's came from
one. A fork is a snapshot nobody names, made into N sessions at once and then
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from .config import SandkastenQuota
from .docker_backend import DockerBackend
from .errors import (
    EngineError,
    NotAllowed,
    QuotaExceeded,
    SessionBusy,
    SessionLost,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotTooLarge,
    WorkspaceExists,
)
from .pausing import Pausing
from .runner_client import RunnerClient
from .sandbox_spec import HOME_IN_SANDBOX, WORKSPACE_IN_SANDBOX
from .session_ask import SessionAsk
from .snapshot_files import (
    Budget,
    allocated_bytes,
    archive_tree,
    copy_image,
    copy_on_write,
    frozen_filesystem,
    pieces,
    pinned_root,
    remove_tree,
    usage_of,
)
from .store import SessionRecord, SnapshotRow, Store
from .workspace_disks import WorkspaceDisks
from .workspace_names import WorkspaceRef, valid_name, workspace_ref

# The parts of a snapshot, in the order a restore sends them: tar archives of the sandbox's tmpfs directories.
ARCHIVED = {"home": HOME_IN_SANDBOX, "tmp": "/tmp", "workspace": WORKSPACE_IN_SANDBOX}
WORKSPACE_IMAGE = "workspace.img"
SERVER_DIR = "server"  # the server's own snapshots; a user's are under users/<tag>/
INCOMING = ".incoming"  # captures under way: a crash leaves them, and the next start removes them


@dataclass(frozen=True)
class Capture:
    """A snapshot's files in a directory, with what it was taken from (``SnapshotRow.detail``)."""

    path: str
    image: str
    detail: dict[str, Any]
    bytes: int

    @property
    def workspace_image(self) -> str | None:
        """The named workspace's disk image in the snapshot, if that is how its workspace was kept."""
        return os.path.join(self.path, WORKSPACE_IMAGE) if self.detail["workspace"]["format"] == "image" else None


class Snapshots:
    """Takes, lists, deletes and restores snapshots (see the module docstring)."""

    def __init__(
        self,
        state_dir: str,
        store: Store,
        backend: DockerBackend,
        pausing: Pausing,
        disks: WorkspaceDisks,
        quota: SandkastenQuota,
    ) -> None:
        self.state_dir = state_dir
        self.root = os.path.join(state_dir, "snapshots")
        self.store = store
        self.backend = backend
        self.pausing = pausing
        self.disks = disks
        self.quota = quota  # the live section: a change applies to the next snapshot
        self._copy_on_write: bool | None = None

    # -- where -----------------------------------------------------------------------

    def _ref(self, name: str, owner: str | None) -> WorkspaceRef:
        if not isinstance(name, str) or not valid_name(name):
            raise EngineError("snapshot names are 1-63 letters, digits, '.', '_' or '-', not %r" % (name,))
        return workspace_ref(self.state_dir, name, owner)  # the same namespaces as workspaces

    def _key(self, name: str, owner: str | None) -> str:
        """Where the snapshot lives, relative to the snapshots' root: ``server/<name>`` for the server's own,
        ``users/<tag>/<name>`` for a user's."""
        ref = self._ref(name, owner)
        return os.path.join(ref.disk_dir or SERVER_DIR, ref.name)

    def _incoming(self) -> str:
        folder = os.path.join(self.root, INCOMING)
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return tempfile.mkdtemp(dir=folder)

    @property
    def copy_on_write(self) -> bool:
        """Whether copies of snapshots share their blocks on this host's file system (checked once)."""
        if self._copy_on_write is None:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            self._copy_on_write = copy_on_write(self.root)
        return self._copy_on_write

    # -- taking ----------------------------------------------------------------------

    async def capture(self, record: SessionRecord) -> Capture:
        """The session's files, taken in one freeze, in a new directory under ``.incoming``."""
        if os.geteuid() != 0:
            raise NotAllowed("snapshots need the server to run as root (it reads the frozen sandbox's files)")
        was_paused = self.pausing.is_paused(record)
        if not was_paused:
            try:
                await self.pausing.pause(record.id)
            except SessionBusy:
                raise SessionBusy(
                    "session %s has calls under way (exec, files, run_code): snapshot it once they are done" % record.id
                ) from None
        folder = self._incoming()
        started = time.monotonic()
        try:
            parts, workspace = await self._take(record, folder)
        except BaseException:
            await asyncio.to_thread(remove_tree, folder)
            raise
        finally:
            if not was_paused:
                with contextlib.suppress(EngineError):  # the capture's own error is the one to report
                    await self.pausing.resume(record.id)
        detail = {
            "limits": dict(record.limits),
            "network": record.network,
            "egress": record.egress,
            "workspace": workspace,
            "parts": parts,
            "frozen_ms": round((time.monotonic() - started) * 1000, 1),
            "processes": "not kept (no checkpoint: see the docs' snapshots page)",
        }
        return Capture(folder, record.image, detail, await asyncio.to_thread(allocated_bytes, folder))

    async def _take(self, record: SessionRecord, folder: str) -> tuple[dict[str, int], dict[str, Any]]:
        """The frozen sandbox's files into ``folder``, read under its root, pinned (``pinned_root``)."""
        gone = SessionLost("session %s is gone (its container is not running)" % record.id)
        pid = await self.backend.root_pid(record.container_id)
        if not pid:
            raise gone
        with pinned_root(pid) as root_fd:
            if await self.backend.root_pid(record.container_id) != pid:
                raise gone  # the PID was the sandbox's when the root was opened: it is the sandbox's root
            return await asyncio.to_thread(self._take_files, root_fd, self._named_workspace(record), folder)

    def _named_workspace(self, record: SessionRecord) -> WorkspaceRef | None:
        if record.workspace is None:
            return None
        return workspace_ref(self.state_dir, record.workspace, record.workspace_owner)

    def _take_files(
        self, root_fd: int, named: WorkspaceRef | None, folder: str
    ) -> tuple[dict[str, int], dict[str, Any]]:
        """Archive home and /tmp, and the workspace (a named one's disk image); bytes per part."""
        mount_point = self.disks.mount_point(named) if named else None
        if named is not None and not (mount_point and os.path.ismount(mount_point) and self.disks.has_image(named)):
            raise NotAllowed(
                "workspace %r is an uncapped Docker volume (the server cannot make disk images: e2fsprogs "
                "missing?), and snapshots keep only capped workspaces" % named.name
            )
        archived = {part: path for part, path in ARCHIVED.items() if part != "workspace" or named is None}
        for path in archived.values():
            files = usage_of(root_fd, path)[1]
            if files > self.quota.max_snapshot_files:
                raise SnapshotTooLarge(
                    "%s holds %d files, more than a snapshot takes from one place, %d (quota.max_snapshot_files)"
                    % (path, files, self.quota.max_snapshot_files)
                )
        budget = Budget(self.quota.max_snapshot_mb << 20)
        parts = {
            part: archive_tree(root_fd, path, os.path.join(folder, part + ".tar"), budget)
            for part, path in archived.items()
        }
        workspace: dict[str, Any] = {"kind": "named" if named else "tmpfs", "name": named.name if named else None}
        workspace["format"] = "tar"
        if named is not None and mount_point:
            dest = os.path.join(folder, WORKSPACE_IMAGE)
            with frozen_filesystem(mount_point):
                copy_image(self.disks.image(named), dest)
            parts["workspace"] = allocated_bytes(dest)
            budget.take(parts["workspace"])
            workspace["format"] = "image"
        return parts, workspace

    async def take(self, record: SessionRecord, name: str, owner: str | None) -> SnapshotRow:
        """Snapshot the session as ``owner``'s ``name``."""
        key = self._key(name, owner)
        if self.store.get_snapshot(key) is not None:
            raise SnapshotExists("you have a snapshot %r already: delete it first, or choose another name" % name)
        self._check_count(owner, self.store.list_snapshots())
        capture = await self.capture(record)
        path = os.path.join(self.root, key)
        row = SnapshotRow(key, owner, name, path, capture.bytes, time.time(), record.id, capture.image, capture.detail)
        try:
            if not self.store.add_snapshot(row, lambda rows: self._check_quota(row, rows)):
                raise SnapshotExists("you have a snapshot %r already: delete it first, or choose another name" % name)
            try:
                os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
                await asyncio.to_thread(remove_tree, path)  # a capture's leftover that no row claimed
                os.rename(capture.path, path)
            except BaseException:
                self.store.remove_snapshot(key)
                raise
        except BaseException:
            await asyncio.to_thread(remove_tree, capture.path)
            raise
        self.store.add_event(record.id, "snapshot_taken", name=name, owner=owner, bytes=capture.bytes)
        return row

    def _check_count(self, owner: str | None, rows: list[SnapshotRow]) -> None:
        limit = self.quota.max_snapshots_per_user
        if limit and sum(1 for row in rows if row.owner == owner) >= limit:
            raise QuotaExceeded(
                "you have %d snapshots, the limit per user (quota.max_snapshots_per_user); delete one first" % limit
            )

    def _check_quota(self, row: SnapshotRow, rows: list[SnapshotRow]) -> None:
        self._check_count(row.owner, rows)
        limit_mb = self.quota.max_snapshots_total_mb
        taken = sum(other.bytes for other in rows)
        if limit_mb and taken + row.bytes > limit_mb << 20:
            raise QuotaExceeded(
                "this snapshot takes %d MiB, and snapshots hold %d MiB of the %d MiB all of them may take "
                "(quota.max_snapshots_total_mb)" % (row.bytes >> 20, taken >> 20, limit_mb)
            )

    # -- listing and deleting --------------------------------------------------------

    def get(self, name: str, owner: str | None) -> SnapshotRow:
        """``owner``'s snapshot ``name``; ``SnapshotNotFound`` for none (someone else's is none too)."""
        row = self.store.get_snapshot(self._key(name, owner)) if valid_name(name) else None
        if row is None:  # a name no snapshot can have is one nobody has
            raise SnapshotNotFound("you have no snapshot %r" % name)
        return row

    def listing(self, owner: str | None, everyone: bool = False) -> list[SnapshotRow]:
        """``owner``'s snapshots (every one with ``everyone``), oldest first."""
        return [row for row in self.store.list_snapshots() if everyone or row.owner == owner]

    async def delete(self, name: str, owner: str | None) -> None:
        """Delete ``owner``'s snapshot ``name`` and its files. Sessions made from it keep theirs."""
        row = self.get(name, owner)
        if self.store.remove_snapshot(row.key):
            await asyncio.to_thread(remove_tree, row.path)  # the recorded path: never one built from the request

    def sweep(self) -> list[str]:
        """Remove captures that never finished and directories no snapshot claims (after a crash)."""
        known = {row.path for row in self.store.list_snapshots()}
        remove_tree(os.path.join(self.root, INCOMING))
        folders = [os.path.join(self.root, SERVER_DIR), *_subfolders(os.path.join(self.root, "users"))]
        stray = [path for folder in folders for path in _subfolders(folder) if path not in known]
        for path in stray:
            remove_tree(path)
        return stray

    # -- restoring -------------------------------------------------------------------

    def as_capture(self, row: SnapshotRow) -> Capture:
        """A recorded snapshot's files, to restore from."""
        if not os.path.isdir(row.path):
            raise EngineError("the files of snapshot %r are missing on the host (%s)" % (row.name, row.path))
        return Capture(row.path, row.image, row.detail, row.bytes)

    async def session_ask(
        self, source: Capture, ask: SessionAsk, workspaces_enabled: bool
    ) -> tuple[SessionAsk, WorkspaceRef | None]:
        """What a session from ``source`` is: the snapshot's image, limits and network unless others are
        asked, and its workspace in a new place. A named one's disk image is put in place here; the new
        workspace is returned, to be taken back if the session does not start."""
        if ask.image is not None and ask.image not in (source.image, source.image.split(":")[-1]):
            raise EngineError("a session from a snapshot runs the snapshot's image, %s" % source.image)
        workspace = ask.workspace
        if source.detail["workspace"]["kind"] == "named" and workspace is None:
            workspace = "%s-%s" % ((source.detail["workspace"]["name"] or "ws")[:48], secrets.token_hex(3))
        ask = dataclasses.replace(
            ask,
            image=source.image,
            workspace=workspace,
            limits=source.detail["limits"] if ask.limits is None else ask.limits,
            network=(source.detail["egress"] or source.detail["network"]) if ask.network is None else ask.network,
            wants_kernel=False,
        )
        if workspace is None or not valid_name(workspace) or not workspaces_enabled:
            return ask, None  # the create refuses a bad or disabled workspace with its own words
        named = workspace_ref(self.state_dir, workspace, ask.workspace_owner)
        if self.disks.has_image(named) or self.store.get_workspace(named.volume) is not None:
            raise WorkspaceExists("workspace %r exists: a session from a snapshot needs a new one" % workspace)
        image = source.workspace_image
        if image is not None:
            if not self.disks.usable:
                raise NotAllowed("this snapshot's workspace is a disk image, and this server cannot mount one")
            target = self.disks.image(named)
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            await asyncio.to_thread(copy_image, image, target)
        return ask, named

    def unplace_workspace(self, workspace: WorkspaceRef) -> None:
        """Take back the disk image ``session_ask`` put in place for a workspace no session took."""
        if self.store.get_workspace(workspace.volume) is None:
            with contextlib.suppress(OSError):
                os.unlink(self.disks.image(workspace))

    @staticmethod
    async def restore_files(capture: Capture, runner: RunnerClient) -> dict[str, Any]:
        """Send the snapshot's archives to the new sandbox's runner, which unpacks them (home last: its
        shell restarts on it)."""
        restored: dict[str, Any] = {}
        for part in ("tmp", "workspace", "home"):
            archive = os.path.join(capture.path, part + ".tar")
            if os.path.exists(archive):
                restored[part] = await runner.restore(part, pieces(archive))
        return restored


def _subfolders(folder: str) -> list[str]:
    try:
        return [entry.path for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []
