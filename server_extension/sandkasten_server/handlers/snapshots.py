"""``snapshots`` and forks: keep a session's files under a name, list and delete them, fork a session."""

from __future__ import annotations

import time
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from sandkasten_kernel.engine import SnapshotNotFound
from sandkasten_kernel.engine.store import SnapshotRow

from .base import SandkastenHandler
from .sessions import session_json


def snapshot_json(row: SnapshotRow) -> dict[str, Any]:
    detail = row.detail
    return {
        "name": row.name,
        "owner": row.owner,
        "bytes": row.bytes,
        "created_at": row.created_at,
        "age_s": round(max(0.0, time.time() - row.created_at), 1),
        "source_session": row.source_session,
        "image": row.image,
        "workspace": detail["workspace"],
        "parts": detail["parts"],
        "limits": detail["limits"],
        "network": bool(detail["egress"] or detail["network"]),
        "frozen_ms": detail["frozen_ms"],
    }


class SessionSnapshotsHandler(SandkastenHandler):
    """``POST sessions/{id}/snapshots``: the session's files, kept as the caller's snapshot."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        body = self.json_body("SnapshotCreate")
        record = self.session_record(session_id)
        row = await self.engine.snapshot_session(record.id, body["name"], self.workspace_owner)
        self.reply(snapshot_json(row), 201)


class SessionForkHandler(SandkastenHandler):
    """``POST sessions/{id}/fork``: N new sessions holding the session's files as they are now."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        body = self.json_body("ForkRequest", required=False)
        record = self.session_record(session_id)
        forks = await self.engine.fork_session(record.id, body.get("count", 1), self.owner, self.workspace_owner)
        self.reply({"sessions": [session_json(fork, self.service.kernels) for fork in forks]}, 201)


class SnapshotsHandler(SandkastenHandler):
    """The caller's snapshots (an admin's: everyone's, each with its owner)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        rows = self.engine.list_snapshots(self.workspace_owner, everyone=self.is_admin)
        self.reply(
            {
                "snapshots": [snapshot_json(row) for row in rows],
                "copy_on_write": self.engine.snapshots.copy_on_write,
            }
        )


class SnapshotHandler(SandkastenHandler):
    """One snapshot of the caller's (an admin names another's with ``?owner=``, empty for the server's own)."""

    def _owner(self, name: str) -> str | None:
        asked = self.get_query_argument("owner", None)
        owner = self.workspace_owner if asked is None else (asked or None)
        if owner != self.workspace_owner and not self.is_admin:
            raise SnapshotNotFound("you have no snapshot %r" % name)  # another user's is as if absent
        return owner

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(snapshot_json(self.engine.snapshots.get(name, self._owner(name))))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.engine.delete_snapshot(name, self._owner(name))
        self.set_status(204)
        self.finish()
