"""``sandkasten sessions list|destroy|pause|resume|snapshot|fork``: the sessions in the store, whether or not a
server runs."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from sandkasten_kernel.engine import Engine, SessionRecord
from sandkasten_kernel.engine.store import SnapshotRow

from .common import add_command, add_group, age, print_table, read_state, require_state, settings, with_engine
from .snapshots import COLUMNS as SNAPSHOT_COLUMNS
from .snapshots import OWNER_HELP, snapshot_row

COLUMNS = ["id", "image", "workspace", "owner", "network", "age", "idle", "exec_count", "status"]


def network_summary(record: SessionRecord) -> str:
    """off, open, or the domain policy in brief (its refusals too, when there are any)."""
    if not record.network:
        return "off"
    if record.egress is None:
        return "open"
    summary = "%d allowed" % len(record.egress["allow"])
    return summary + (", %d refused" % record.egress_refused if record.egress_refused else "")


def add_to(commands: Any) -> None:
    group = add_group(commands, "sessions", "list, destroy, pause, resume, snapshot and fork sessions")
    add_command(group, "list", _list, "list sessions", json_output=True)
    for name, (act, done, help_text) in ACTIONS.items():
        add_command(group, name, _acting(act, done), help_text).add_argument("ids", nargs="+", metavar="ID")
    snapshot = add_command(
        group, "snapshot", _snapshot, "keep a session's files (home, /tmp, /workspace) as a snapshot", json_output=True
    )
    snapshot.add_argument("id", metavar="ID")
    snapshot.add_argument("name", metavar="NAME")
    snapshot.add_argument("--owner", help=OWNER_HELP)
    fork = add_command(
        group, "fork", _fork, "new sessions holding a session's files as they are now (all or none)", json_output=True
    )
    fork.add_argument("id", metavar="ID")
    fork.add_argument("-n", "--count", type=int, default=1, metavar="N", help="how many sessions (1-16; default: 1)")


def session_row(record: SessionRecord, as_json: bool) -> dict[str, Any]:
    """A session as the commands show it: as the API does, or a table's row."""
    row = record.public()
    if not as_json:
        row.update(
            age=age(record.created_at),
            idle=age(record.last_active),
            image=record.image.split("/")[-1],
            network=network_summary(record),
        )
    return row


def _list(options: argparse.Namespace) -> int:
    async def sessions(engine: Engine) -> list[SessionRecord]:
        return engine.list_sessions()

    records = read_state(options, sessions)
    print_table([session_row(record, options.json) for record in records], COLUMNS, options.json, "no sessions")
    return 0


def _snapshot(options: argparse.Namespace) -> int:
    async def take(engine: Engine) -> SnapshotRow:
        return await engine.snapshot_session(options.id, options.name, options.owner)

    config = settings(options)
    require_state(config, "session %r" % options.id)
    row = with_engine(config, take)
    print_table([snapshot_row(row, options.json)], SNAPSHOT_COLUMNS, options.json, "")
    return 0


def _fork(options: argparse.Namespace) -> int:
    async def fork(engine: Engine) -> list[SessionRecord]:
        # As `sandkasten run`'s: no reconcile, pool or reaper (a server may own the state directory).
        await engine.start(pool=False, reaper=False, reconcile=False)
        record = engine.get_session(options.id)
        # The forks are the session's owner's, as if they had asked; a named workspace's copies are theirs too.
        return await engine.fork_session(record.id, options.count, record.owner, record.workspace_owner)

    config = settings(options)
    require_state(config, "session %r" % options.id)
    forks = with_engine(config, fork)
    print_table([session_row(record, options.json) for record in forks], COLUMNS, options.json, "")
    return 0


# What each action on sessions does, what it prints, and its help.
Act = Callable[[Engine, str], Awaitable[Any]]
ACTIONS: dict[str, tuple[Act, str, str]] = {
    "destroy": (
        lambda engine, session_id: engine.destroy_session(session_id, "destroyed from the command line"),
        "destroyed",
        "destroy sessions (their workspaces stay)",
    ),
    "pause": (
        lambda engine, session_id: engine.pause_session(session_id),
        "paused",
        "freeze sessions: nothing runs in them and their clocks stop (their memory stays)",
    ),
    "resume": (
        lambda engine, session_id: engine.resume_session(session_id),
        "resumed",
        "let paused sessions run on, as they were",
    ),
}


def _acting(act: Act, done: str) -> Callable[[argparse.Namespace], int]:
    """The command that does ``act`` to each session of ``options.ids`` and says ``done``."""

    def run(options: argparse.Namespace) -> int:
        async def each(engine: Engine) -> None:
            for session_id in options.ids:
                await act(engine, session_id)
                print("%s %s" % (done, session_id))

        config = settings(options)
        require_state(config, "session %r" % options.ids[0])
        with_engine(config, each)
        return 0

    return run
