"""``sandkasten sessions list|destroy|pause|resume``: the sessions in the store, whether or not a server runs."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

from sandkasten_kernel.engine import Engine, SessionRecord

from .common import add_command, add_group, age, has_state, print_table, require_state, settings, with_engine

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
    group = add_group(commands, "sessions", "list, destroy, pause and resume sessions")
    add_command(group, "list", _list, "list sessions", json_output=True)
    for name, (act, done, help_text) in ACTIONS.items():
        add_command(group, name, _acting(act, done), help_text).add_argument("ids", nargs="+", metavar="ID")


def _list(options: argparse.Namespace) -> int:
    async def sessions(engine: Engine) -> list[SessionRecord]:
        return engine.list_sessions()

    config = settings(options)
    rows = []
    for record in with_engine(config, sessions) if has_state(config) else []:
        row = record.public()
        if not options.json:
            row.update(
                age=age(record.created_at),
                idle=age(record.last_active),
                image=record.image.split("/")[-1],
                network=network_summary(record),
            )
        rows.append(row)
    print_table(rows, COLUMNS, options.json, "no sessions")
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
