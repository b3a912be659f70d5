"""The session store: SQLite in WAL mode at ``<state_dir>/sandkasten.db``.

It holds sessions, their events, who owns each named workspace, and the images
added with ``sandkasten images add`` (``custom_images``). Docker
labels hold the rest of the truth (which containers exist); the engine
reconciles the two on start.

The schema's version is SQLite's ``user_version``. A database of an older
version is brought up to date in one transaction when it is opened (a server and
an agent script's process may open it at once: the first migrates, the other
finds it done); one of a newer version is refused, never rewritten.

Calls are short and local, and serialized by a lock; they run on the caller's
thread. A database that is locked or corrupt raises ``StoreError``: it is never
reset behind the user's back.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import StoreError as StoreError  # re-exported: callers import it from here

STORE_FILE = "sandkasten.db"  # in the state directory
SCHEMA_VERSION = 6
SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    container_id TEXT NOT NULL,
    image TEXT NOT NULL,
    workspace TEXT,
    run_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_active REAL NOT NULL,
    ttl_s INTEGER NOT NULL,
    idle_timeout_s INTEGER NOT NULL,
    limits TEXT NOT NULL,
    network INTEGER NOT NULL,
    env TEXT NOT NULL,
    kernel_id TEXT,
    owner TEXT,
    warm INTEGER NOT NULL,
    exec_count INTEGER NOT NULL DEFAULT 0,
    workspace_owner TEXT,
    egress TEXT,
    egress_ip TEXT UNIQUE,
    egress_refused INTEGER NOT NULL DEFAULT 0,
    paused_at REAL,
    paused_s REAL NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS workspaces (
    volume TEXT PRIMARY KEY,
    owner TEXT,
    name TEXT NOT NULL,
    size_mb INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS workspaces_owner ON workspaces (owner);
CREATE TABLE IF NOT EXISTS snapshots (
    key TEXT PRIMARY KEY,
    owner TEXT,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at REAL NOT NULL,
    source_session TEXT,
    image TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    session_id TEXT,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events (session_id);
CREATE TABLE IF NOT EXISTS images (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    context TEXT,
    added_at REAL NOT NULL,
    added_by TEXT,
    state TEXT NOT NULL,
    build_pid INTEGER,
    last_error TEXT,
    kernel INTEGER NOT NULL DEFAULT 0,
    built_at REAL
);
"""
# What brings a database of version N-1 to N (the tables new in N come from SCHEMA).
MIGRATIONS = {
    2: ["ALTER TABLE sessions ADD COLUMN workspace_owner TEXT"],
    3: [
        "ALTER TABLE sessions ADD COLUMN egress TEXT",
        "ALTER TABLE sessions ADD COLUMN egress_ip TEXT",
        "CREATE UNIQUE INDEX IF NOT EXISTS sessions_egress_ip ON sessions (egress_ip)",
        "ALTER TABLE sessions ADD COLUMN egress_refused INTEGER NOT NULL DEFAULT 0",
    ],
    4: [
        "ALTER TABLE sessions ADD COLUMN paused_at REAL",
        "ALTER TABLE sessions ADD COLUMN paused_s REAL NOT NULL DEFAULT 0",
    ],
    5: [],  # the snapshots and images tables (SCHEMA makes them)
    6: ["ALTER TABLE sessions ADD COLUMN labels TEXT NOT NULL DEFAULT '{}'"],
}


@dataclass
class SessionRecord:
    """A session as the store keeps it: its sandbox, limits, owner, clocks and counters."""

    id: str
    container_id: str
    image: str
    workspace: str | None
    run_dir: str
    status: str  # running | paused
    created_at: float
    last_active: float
    ttl_s: int
    idle_timeout_s: int
    limits: dict[str, Any]
    network: bool
    env: dict[str, str] = field(default_factory=dict)
    kernel_id: str | None = None
    owner: str | None = None
    warm: bool = False
    exec_count: int = 0
    workspace_owner: str | None = None  # whose named workspace it mounts (None: the server's own)
    egress: dict[str, list[str]] | None = None  # the domain policy in force ({allow, deny}); None: none
    egress_ip: str | None = None  # its address on the proxy's network, which the proxy knows it by
    egress_refused: int = 0  # connections the proxy refused
    paused_at: float | None = None  # since when it is paused (status paused), else None
    paused_s: float = 0.0  # seconds it spent paused before, which its ttl does not count
    labels: dict[str, str] = field(default_factory=dict)  # the creator's own names for it (E2B's metadata)

    def public(self) -> dict[str, Any]:
        """The record as the API shows it (no host paths, no env values)."""
        data = asdict(self)
        data.pop("run_dir")
        data.pop("egress_ip")
        data["env"] = sorted(self.env)
        return data


@dataclass(frozen=True)
class WorkspaceRow:
    """A named workspace the store knows: its volume, whose it is, and the disk it may claim."""

    volume: str
    owner: str | None  # None: the server's own
    name: str
    size_mb: int
    created_at: float


@dataclass(frozen=True)
class SnapshotRow:
    """A snapshot the store knows: whose it is, where its files are, and what it was taken from."""

    key: str  # its directory relative to the snapshots' root: unique per owner and name
    owner: str | None  # None: the server's own
    name: str
    path: str
    bytes: int
    created_at: float
    source_session: str | None
    image: str
    detail: dict[str, Any]  # limits, network, workspace kind, bytes per part, ...


@dataclass(frozen=True)
class ImageRow:
    """An image added with ``sandkasten images add``: where it comes from, and how its last build went."""

    name: str  # sessions' name for sandkasten/runtime:<name>
    kind: str  # dockerfile | from
    source: str  # the Dockerfile's absolute path, or the image reference it was made from
    context: str | None  # the build context of a Dockerfile (None for kind from)
    added_at: float
    added_by: str | None  # the host user who added it
    state: str  # building | built | failed
    build_pid: int | None = None  # the process building it (state building)
    last_error: str | None = None  # why its last build failed (state failed)
    kernel: bool = False  # whether it has ipykernel: a kernelspec and warm kernels
    built_at: float | None = None


@dataclass(frozen=True)
class Event:
    """One entry of the event log (a session created, reaped, lost, ...)."""

    seq: int
    at: float
    session_id: str | None
    kind: str
    detail: dict[str, Any]


_JSON_FIELDS = ("limits", "env", "egress", "labels")
_BOOL_FIELDS = ("network", "warm")


def _row_to_workspace(row: sqlite3.Row) -> WorkspaceRow:
    return WorkspaceRow(**dict(row))


def _row_to_snapshot(row: sqlite3.Row) -> SnapshotRow:
    data = dict(row)
    data["detail"] = json.loads(data["detail"])
    return SnapshotRow(**data)


def _row_to_record(row: sqlite3.Row) -> SessionRecord:
    data = dict(row)
    for name in _JSON_FIELDS:
        data[name] = json.loads(data[name]) if data[name] is not None else None
    for name in _BOOL_FIELDS:
        data[name] = bool(data[name])
    return SessionRecord(**data)


def _row_to_image(row: sqlite3.Row) -> ImageRow:
    data = dict(row)
    data["kernel"] = bool(data["kernel"])
    return ImageRow(**data)


def _row_to_event(row: sqlite3.Row) -> Event:
    return Event(row["seq"], row["at"], row["session_id"], row["kind"], json.loads(row["detail"]))


def store_path(state_dir: str) -> str:
    """Where the store of ``state_dir`` is (it may not exist yet)."""
    return os.path.join(state_dir, STORE_FILE)


def open_state_store(state_dir: str) -> Store:
    """The store of ``state_dir``, making the directory first if need be: others may pass through it (to
    kernel sockets they are let into) but not list it or read the store."""
    os.makedirs(state_dir, mode=0o711, exist_ok=True)
    info = os.stat(state_dir)
    if info.st_uid == os.geteuid():
        os.chmod(state_dir, info.st_mode & 0o7711)
    return Store(store_path(state_dir))


def _make_private(path: str) -> None:
    """Create ``path`` readable by its owner only, or make it so.

    An existing store may be open in this process already (the CLI's serve and the server's engine, say):
    closing any descriptor of it would drop SQLite's POSIX locks on it, and another process could then take
    itself for the last user and delete the WAL under the open connection. So an existing file is reached
    through an O_PATH descriptor, whose close leaves locks alone.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | os.O_NOFOLLOW)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path) from None
            os.chmod("/proc/self/fd/%d" % fd, 0o600)
        finally:
            os.close(fd)
        return
    os.close(fd)


class Store:
    """The SQLite store of sessions, events, workspace owners and added images, shared by the server and other
    processes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            _make_private(path)  # sessions' env lives here; SQLite gives -wal and -shm the same mode
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=5.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._db.execute("SELECT count(*) FROM sessions").fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError("the session store %s cannot be used: %s (it was left as it is)" % (path, exc)) from None

    def _migrate(self) -> None:
        """Create the tables, or bring an older database's up to SCHEMA_VERSION, in one transaction."""
        self._db.execute("BEGIN IMMEDIATE")  # another process migrating at once waits, then finds it done
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    "%s has schema version %d; this Sandkasten knows up to %d" % (self.path, version, SCHEMA_VERSION)
                )
            if version > 0:  # 0 is a new database: SCHEMA makes every table as it is now
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(step, []):
                        self._db.execute(statement)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute("PRAGMA user_version=%d" % SCHEMA_VERSION)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise StoreError("the session store %s failed: %s" % (self.path, exc)) from None

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return list(self._db.execute(sql, args).fetchall())
            except sqlite3.DatabaseError as exc:
                raise StoreError("the session store %s failed: %s" % (self.path, exc)) from None

    # -- sessions -----------------------------------------------------------------

    def add_session(self, record: SessionRecord) -> None:
        """Record a new session, with its ``created`` event."""
        data = asdict(record)
        for name in _JSON_FIELDS:
            data[name] = json.dumps(data[name])
        columns = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        with self._transaction() as db:
            db.execute("INSERT INTO sessions (%s) VALUES (%s)" % (columns, marks), tuple(data.values()))
            self._event(db, record.id, "created", {"image": record.image, "warm": record.warm})

    def get_session(self, session_id: str) -> SessionRecord | None:
        """The session's record, or None when there is none."""
        rows = self._query("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return _row_to_record(rows[0]) if rows else None

    def list_sessions(self) -> list[SessionRecord]:
        """Every session's record, oldest first."""
        return [_row_to_record(row) for row in self._query("SELECT * FROM sessions ORDER BY created_at")]

    def touch(self, session_id: str, exec_count: int = 0) -> None:
        """Set the session's last_active to now and add ``exec_count`` to its count of calls."""
        with self._transaction() as db:
            db.execute(
                "UPDATE sessions SET last_active = ?, exec_count = exec_count + ? WHERE id = ?",
                (time.time(), exec_count, session_id),
            )

    def update(self, session_id: str, **values: Any) -> None:
        """Set columns of the session's record (such as ``kernel_id``) to the given values."""
        sets = ", ".join("%s = ?" % name for name in values)
        with self._transaction() as db:
            db.execute("UPDATE sessions SET %s WHERE id = ?" % sets, (*values.values(), session_id))

    def mark_paused(self, session_id: str, at: float, **detail: Any) -> bool:
        """Record that the session is paused since ``at``, with a ``paused`` event; False if it was already."""
        with self._transaction() as db:
            changed = (
                db.execute(
                    "UPDATE sessions SET status = 'paused', paused_at = ? WHERE id = ? AND status != 'paused'",
                    (at, session_id),
                ).rowcount
                > 0
            )
            if changed:
                self._event(db, session_id, "paused", detail)
        return changed

    def mark_running(self, session_id: str, at: float, **detail: Any) -> bool:
        """Record that the paused session runs again since ``at``, with a ``resumed`` event; False if it was not
        paused. Its clocks move past the pause: ``paused_s`` grows by it (the ttl does not count it), and
        ``last_active`` moves by it, so it comes back exactly as idle as it went (never later than ``at``)."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT paused_at FROM sessions WHERE id = ? AND status = 'paused'", (session_id,)
            ).fetchone()
            if row is None:
                return False
            paused = max(0.0, at - (row["paused_at"] if row["paused_at"] is not None else at))
            db.execute(
                "UPDATE sessions SET status = 'running', paused_at = NULL, paused_s = paused_s + ?, "
                "last_active = min(last_active + ?, ?) WHERE id = ?",
                (paused, paused, at, session_id),
            )
            self._event(db, session_id, "resumed", {"paused_s": round(paused, 3), **detail})
        return True

    def add_egress_refusals(self, session_id: str, count: int, events: list[dict[str, Any]]) -> None:
        """Count ``count`` more connections the proxy refused the session, with an event for each of ``events``."""
        with self._transaction() as db:
            db.execute("UPDATE sessions SET egress_refused = egress_refused + ? WHERE id = ?", (count, session_id))
            for detail in events:
                self._event(db, session_id, "egress_refused", detail)

    def egress_ips(self) -> dict[str, str]:
        """The proxy network's addresses in use, with the session holding each."""
        rows = self._query("SELECT id, egress_ip FROM sessions WHERE egress_ip IS NOT NULL")
        return {row["egress_ip"]: row["id"] for row in rows}

    def remove_session(self, session_id: str, reason: str) -> bool:
        """Delete the session's record, with a ``destroyed`` event; False if there was none."""
        with self._transaction() as db:
            gone = db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount > 0
            if gone:
                self._event(db, session_id, "destroyed", {"reason": reason})
        return gone

    # -- workspaces -------------------------------------------------------------------

    def add_workspace(self, row: WorkspaceRow, check: Callable[[list[WorkspaceRow]], None] | None = None) -> bool:
        """Record ``row`` unless its volume is known already; False if it was.

        ``check`` sees every workspace recorded and may refuse the new one by
        raising; check and insert are one transaction, so concurrent creates (this
        process's or another's) cannot both pass a quota meant for one of them.
        """
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM workspaces WHERE volume = ?", (row.volume,)).fetchone():
                return False
            if check is not None:
                check([_row_to_workspace(r) for r in db.execute("SELECT * FROM workspaces")])
            db.execute(
                "INSERT INTO workspaces (volume, owner, name, size_mb, created_at) VALUES (?, ?, ?, ?, ?)",
                (row.volume, row.owner, row.name, row.size_mb, row.created_at),
            )
        return True

    def get_workspace(self, volume: str) -> WorkspaceRow | None:
        """The recorded workspace whose Docker volume is ``volume``, or None."""
        rows = self._query("SELECT * FROM workspaces WHERE volume = ?", (volume,))
        return _row_to_workspace(rows[0]) if rows else None

    def list_workspaces(self) -> list[WorkspaceRow]:
        """Every recorded workspace, by owner and name."""
        return [_row_to_workspace(row) for row in self._query("SELECT * FROM workspaces ORDER BY owner, name")]

    def remove_workspace(self, volume: str) -> None:
        """Forget the workspace whose Docker volume is ``volume`` (if it was recorded)."""
        with self._transaction() as db:
            db.execute("DELETE FROM workspaces WHERE volume = ?", (volume,))

    def workspace_last_used(self) -> dict[tuple[str | None, str], float]:
        """When each workspace, by (owner, name), was last used, from session events."""
        rows = self._query(
            "SELECT json_extract(detail, '$.owner') AS owner, json_extract(detail, '$.workspace') AS name, "
            "max(at) AS at FROM events WHERE kind = 'workspace_used' GROUP BY owner, name"
        )
        return {(row["owner"], row["name"]): row["at"] for row in rows}

    # -- added images -------------------------------------------------------------------

    def add_image(self, row: ImageRow) -> bool:
        """Record ``row`` unless an image of its name is recorded already; False if one was."""
        data = asdict(row)
        columns = ", ".join(data)
        marks = ", ".join("?" for _ in data)
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM images WHERE name = ?", (row.name,)).fetchone():
                return False
            db.execute("INSERT INTO images (%s) VALUES (%s)" % (columns, marks), tuple(data.values()))
        return True

    def get_image(self, name: str) -> ImageRow | None:
        """The added image ``name``, or None."""
        rows = self._query("SELECT * FROM images WHERE name = ?", (name,))
        return _row_to_image(rows[0]) if rows else None

    def list_images(self) -> list[ImageRow]:
        """Every added image, by name."""
        return [_row_to_image(row) for row in self._query("SELECT * FROM images ORDER BY name")]

    def update_image(self, name: str, **values: Any) -> None:
        """Set columns of the added image ``name`` (``state``, ``last_error``, ...) to the given values."""
        sets = ", ".join("%s = ?" % column for column in values)
        with self._transaction() as db:
            db.execute("UPDATE images SET %s WHERE name = ?" % sets, (*values.values(), name))

    def claim_image_build(
        self, name: str, pid: int, building: Callable[[ImageRow], bool]
    ) -> tuple[ImageRow | None, bool]:
        """Mark the added image ``name`` as being built by ``pid``, unless ``building`` says its row shows a
        build under way; its row as it was (None: no such image), and whether it is now ``pid``'s to build.
        Check and mark are one transaction, so two builds of one image (in any processes) never run at once."""
        with self._transaction() as db:
            found = db.execute("SELECT * FROM images WHERE name = ?", (name,)).fetchone()
            if found is None:
                return None, False
            row = _row_to_image(found)
            if building(row):
                return row, False
            db.execute("UPDATE images SET state = 'building', build_pid = ? WHERE name = ?", (pid, name))
        return row, True

    def remove_image(self, name: str) -> bool:
        """Forget the added image ``name``; False if it was not recorded."""
        with self._transaction() as db:
            return db.execute("DELETE FROM images WHERE name = ?", (name,)).rowcount > 0

    # -- events ---------------------------------------------------------------------

    # -- snapshots --------------------------------------------------------------------

    def add_snapshot(self, row: SnapshotRow, check: Callable[[list[SnapshotRow]], None] | None = None) -> bool:
        """Record ``row`` unless its key is taken (False). ``check`` sees every snapshot recorded and may
        refuse it by raising; check and insert are one transaction, as in ``add_workspace``."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM snapshots WHERE key = ?", (row.key,)).fetchone():
                return False
            if check is not None:
                check([_row_to_snapshot(r) for r in db.execute("SELECT * FROM snapshots")])
            db.execute(
                "INSERT INTO snapshots (key, owner, name, path, bytes, created_at, source_session, image, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.key,
                    row.owner,
                    row.name,
                    row.path,
                    row.bytes,
                    row.created_at,
                    row.source_session,
                    row.image,
                    json.dumps(row.detail),
                ),
            )
        return True

    def get_snapshot(self, key: str) -> SnapshotRow | None:
        """The snapshot recorded under ``key``, or None."""
        rows = self._query("SELECT * FROM snapshots WHERE key = ?", (key,))
        return _row_to_snapshot(rows[0]) if rows else None

    def list_snapshots(self) -> list[SnapshotRow]:
        """Every recorded snapshot, oldest first."""
        return [_row_to_snapshot(row) for row in self._query("SELECT * FROM snapshots ORDER BY created_at")]

    def remove_snapshot(self, key: str) -> bool:
        """Forget the snapshot recorded under ``key``; False if there was none."""
        with self._transaction() as db:
            return db.execute("DELETE FROM snapshots WHERE key = ?", (key,)).rowcount > 0

    @staticmethod
    def _event(db: sqlite3.Connection, session_id: str | None, kind: str, detail: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO events (at, session_id, kind, detail) VALUES (?, ?, ?, ?)",
            (time.time(), session_id, kind, json.dumps(detail)),
        )

    def add_event(self, session_id: str | None, kind: str, **detail: Any) -> None:
        """Log an event of ``kind`` with ``detail``, for a session or (``session_id`` None) the server."""
        with self._transaction() as db:
            self._event(db, session_id, kind, detail)

    def latest_event(self, session_id: str, kind: str) -> Event | None:
        """The session's latest event of ``kind``, or None."""
        rows = self._query(
            "SELECT * FROM events WHERE session_id = ? AND kind = ? ORDER BY seq DESC LIMIT 1", (session_id, kind)
        )
        return _row_to_event(rows[0]) if rows else None

    def events(self, limit: int = 100, session_id: str | None = None) -> list[Event]:
        """The latest ``limit`` events, newest first, of one session or of all."""
        if session_id is None:
            rows = self._query("SELECT * FROM events ORDER BY seq DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                "SELECT * FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT ?", (session_id, limit)
            )
        return [_row_to_event(row) for row in rows]
