"""``sandkasten workspaces list|delete``: named workspaces with owner, size, users and last use."""

from __future__ import annotations

import argparse
from typing import Any

from sandkasten_kernel.engine import Engine

from .common import add_command, add_group, age, delete_each, megabytes, print_table, read_state


def add_to(commands: Any) -> None:
    group = add_group(commands, "workspaces", "list and delete workspaces")
    add_command(group, "list", _list, "list workspaces with size, users and last use", json_output=True)
    delete = add_command(group, "delete", _delete, "delete workspaces (refused while a session uses one)")
    delete.add_argument("names", nargs="+", metavar="NAME")
    delete.add_argument("--owner", help="the user whose workspaces they are (default: the server's own, owner '-')")


def _list(options: argparse.Namespace) -> int:
    rows = read_state(options, Engine.list_workspaces)
    if not options.json:
        for row in rows:
            row["last_used"] = age(row["last_used"]) + " ago" if row["last_used"] else None
            row["size"] = megabytes(row.pop("size_bytes"))
    print_table(rows, ["name", "owner", "size", "in_use_by", "last_used"], options.json, "no workspaces")
    return 0


def _delete(options: argparse.Namespace) -> int:
    return delete_each(options, "workspace", Engine.delete_workspace)
