"""Workspaces: named volumes at /workspace that outlive sessions, within their owners' quotas.

A workspace is a name within an owner (see ``workspace_names``): the store
records each one made, with its owner and the disk it may claim, and the quotas
count those records. The server's own workspaces made before the store recorded
them are still found by their volumes, and recorded when next used.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .config import SandkastenQuota
from .docker_backend import DockerBackend
from .errors import EngineError, QuotaExceeded, WorkspaceInUse, WorkspaceNotFound
from .removals import Removals
from .sandboxes import LABEL_STATE_DIR, LABEL_WORKSPACE
from .store import SessionRecord, Store, WorkspaceRow
from .workspace_disks import WorkspaceDisks
from .workspace_names import SERVER_PREFIX, WorkspaceRef, valid_name, workspace_ref


class Workspaces:
    """Make, list and delete the workspaces of one state directory."""

    def __init__(
        self,
        state_dir: str,
        store: Store,
        backend: DockerBackend,
        disks: WorkspaceDisks,
        removals: Removals,
        quota: SandkastenQuota,
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.backend = backend
        self.disks = disks
        self.removals = removals
        self.quota = quota  # the live section: a config change applies to the next workspace made

    async def ensure(self, workspace: WorkspaceRef) -> None:
        """Record the workspace (within the quotas, if it is new), then mount its disk and make its volume."""
        made = await self._record(workspace)
        try:
            disk = await asyncio.to_thread(self.disks.ensure_mounted, workspace)
            labels = {LABEL_WORKSPACE: workspace.name, LABEL_STATE_DIR: self.state_dir}
            await self.backend.ensure_volume(workspace.volume, labels, disk)
        except BaseException:
            if made:  # nothing of it is in use: take it back, so it claims no quota
                with contextlib.suppress(OSError, EngineError):  # the first error is the one to report
                    await asyncio.shield(asyncio.to_thread(self.disks.remove, workspace))
                with contextlib.suppress(EngineError):
                    self.store.remove_workspace(workspace.volume)
            raise

    async def _record(self, workspace: WorkspaceRef) -> bool:
        """Record the workspace in the store; True if it is new (and so was checked against the quotas)."""
        if self.store.get_workspace(workspace.volume) is not None:
            return False
        size_mb = self.disks.size_mb  # the size its image is made at
        row = WorkspaceRow(workspace.volume, workspace.owner, workspace.name, size_mb, time.time())
        if workspace.owner is None and (
            self.disks.has_image(workspace) or await self.backend.volume_exists(workspace.volume)
        ):
            self.store.add_workspace(row)  # the server's own, made before the store recorded workspaces
            return False
        return self.store.add_workspace(row, lambda rows: self._check_quota(workspace, rows))

    def _check_quota(self, workspace: WorkspaceRef, rows: list[WorkspaceRow]) -> None:
        quota = self.quota
        mine = sum(1 for row in rows if row.owner == workspace.owner)
        if quota.max_workspaces_per_user and mine >= quota.max_workspaces_per_user:
            raise QuotaExceeded(
                "you have %d workspaces, the limit per user (quota.max_workspaces_per_user); delete one first"
                % quota.max_workspaces_per_user
            )
        size_mb, taken_mb = self.disks.size_mb, sum(row.size_mb for row in rows)
        if quota.max_workspaces_total_mb and taken_mb + size_mb > quota.max_workspaces_total_mb:
            raise QuotaExceeded(
                "a new workspace needs %d MiB, and workspaces hold %d MiB of the %d MiB all of them may take "
                "(quota.max_workspaces_total_mb)" % (size_mb, taken_mb, quota.max_workspaces_total_mb)
            )

    async def listing(self, sessions: list[SessionRecord]) -> list[dict[str, Any]]:
        """Every workspace of this server, each with its owner (None: the server's own) and the
        ``sessions`` that use it."""
        in_use: dict[str, list[str]] = {}
        for record in sessions:
            if record.workspace:
                volume = workspace_ref(self.state_dir, record.workspace, record.workspace_owner).volume
                in_use.setdefault(volume, []).append(record.id)
        volumes = {v["name"]: v for v in await self.backend.volumes(LABEL_WORKSPACE)}
        known = [workspace_ref(self.state_dir, row.name, row.owner) for row in self.store.list_workspaces()]
        recorded = {ref.volume for ref in known}
        for found in volumes.values():
            name = found["labels"].get(LABEL_WORKSPACE, "")
            ours = found["labels"].get(LABEL_STATE_DIR, self.state_dir) == self.state_dir
            if found["name"] not in recorded and found["name"] == SERVER_PREFIX + name and ours:
                known.append(workspace_ref(self.state_dir, name, None))  # the server's own, not recorded yet
        last_used = self.store.workspace_last_used()
        rows = [
            {
                "name": ref.name,
                "owner": ref.owner,
                "size_bytes": self._size(ref, volumes.get(ref.volume, {}).get("size", -1)),
                "in_use_by": in_use.get(ref.volume, []),
                "last_used": last_used.get((ref.owner, ref.name)),
            }
            for ref in known
        ]
        return sorted(rows, key=lambda row: (row["owner"] or "", row["name"]))

    def _size(self, workspace: WorkspaceRef, reported: int) -> int:
        used = self.disks.used_bytes(workspace)
        return reported if used is None else used

    async def delete(self, name: str, owner: str | None, sessions: list[SessionRecord]) -> None:
        """Delete ``owner``'s workspace ``name`` (None: the server's own) and its files, unless one of
        ``sessions`` uses it."""
        if not valid_name(name):
            raise WorkspaceNotFound("no workspace %r" % name)
        workspace = workspace_ref(self.state_dir, name, owner)
        users = [r.id for r in sessions if r.workspace == name and r.workspace_owner == owner]
        if users:
            raise WorkspaceInUse("workspace %r is in use by session %s" % (name, ", ".join(users)))
        recorded = self.store.get_workspace(workspace.volume) is not None
        await self.removals.drain()  # a destroyed session's container may hold the volume a moment longer
        if not await self.backend.remove_volume(workspace.volume) and not recorded:
            raise WorkspaceNotFound("no workspace %r" % name)
        await asyncio.to_thread(self.disks.remove, workspace)
        self.store.remove_workspace(workspace.volume)
        self.store.add_event(None, "workspace_deleted", workspace=name, owner=owner)
