"""``sandkasten snapshots list|delete``: sessions' files kept under a name (``sessions snapshot`` takes one)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from sandkasten_kernel.engine import Engine
from sandkasten_kernel.engine.store import SnapshotRow

from .common import add_command, add_group, age, delete_each, megabytes, print_table, read_state

COLUMNS = ["name", "owner", "size", "image", "workspace", "source_session", "age"]
OWNER_HELP = "the user whose snapshot it is (default: the server's own, owner '-')"


def add_to(commands: Any) -> None:
    group = add_group(commands, "snapshots", "list and delete snapshots of sessions' files")
    add_command(group, "list", _list, "list everyone's snapshots with size and source session", json_output=True)
    delete = add_command(group, "delete", _delete, "delete snapshots (sessions made from one keep their files)")
    delete.add_argument("names", nargs="+", metavar="NAME")
    delete.add_argument("--owner", help=OWNER_HELP)


def snapshot_row(row: SnapshotRow, as_json: bool) -> dict[str, Any]:
    """A snapshot as the commands show it: all the store has (what it was taken from too), or a table's row."""
    data = dataclasses.asdict(row)
    del data["key"]
    data.update(data.pop("detail"))
    if not as_json:
        workspace = data["workspace"]
        data.update(
            size=megabytes(row.bytes),
            image=row.image.split("/")[-1],
            workspace=workspace["name"] if workspace["kind"] == "named" else workspace["kind"],
            age=age(row.created_at),
        )
    return data


def _list(options: argparse.Namespace) -> int:
    async def everyones(engine: Engine) -> list[SnapshotRow]:
        return engine.list_snapshots(everyone=True)

    rows = read_state(options, everyones)
    print_table([snapshot_row(row, options.json) for row in rows], COLUMNS, options.json, "no snapshots")
    return 0


def _delete(options: argparse.Namespace) -> int:
    return delete_each(options, "snapshot", Engine.delete_snapshot)
