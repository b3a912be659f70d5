"""``sandkasten sessions|pool|workspaces``: look at and clean up the engine's state.

These read the store and Docker directly, so they work whether or not a server
is running; they never start a pool or reconcile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from .engine.config import CONFIG_ENV, Settings, find_config, load_settings
from .engine.docker_backend import DockerBackend, connect
from .engine.engine import Engine
from .engine.sandboxes import LABEL_POOL, LABEL_SESSION


def settings(options: argparse.Namespace) -> Settings:
    return load_settings(find_config(options.config))


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str) -> None:
    if as_json:
        print(json.dumps(list(rows), indent=2, default=str))
        return
    if not rows:
        print(empty)
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    for line in [[column.upper() for column in columns], *cells]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def _age(since: float) -> str:
    seconds = int(time.time() - since)
    return "%dh%02dm" % (seconds // 3600, seconds // 60 % 60) if seconds >= 3600 else "%dm%02ds" % divmod(seconds, 60)


def sessions_list(options: argparse.Namespace) -> int:
    engine = Engine(settings(options))
    rows = []
    for record in engine.list_sessions():
        row = record.public()
        if not options.json:
            row.update(age=_age(record.created_at), idle=_age(record.last_active), image=record.image.split("/")[-1])
        rows.append(row)
    columns = ["id", "image", "workspace", "owner", "age", "idle", "exec_count", "status"]
    print_table(rows, columns, options.json, "no sessions")
    return 0


def sessions_destroy(options: argparse.Namespace) -> int:
    async def destroy() -> None:
        engine = Engine(settings(options))
        for session_id in options.ids:
            await engine.destroy_session(session_id, "destroyed from the command line")
            print("destroyed %s" % session_id)

    asyncio.run(destroy())
    return 0


def pool_status(options: argparse.Namespace) -> int:
    """Warm sandboxes as Docker shows them: pool containers that no session has claimed."""
    config = settings(options)
    engine = Engine(config)
    claimed = {record.id for record in engine.list_sessions()}

    async def warm() -> list[Any]:
        return await DockerBackend(connect()).containers(engine.factory.own_label)

    ready: dict[str, int] = {}
    for container in asyncio.run(warm()):
        if LABEL_POOL in container.labels and container.running and container.labels[LABEL_SESSION] not in claimed:
            ready[container.labels[LABEL_POOL]] = ready.get(container.labels[LABEL_POOL], 0) + 1
    targets = {config.resolve_image(name): count for name, count in config.pool.images.items()}
    rows = [
        {"image": image, "target": targets.get(image, 0), "ready": ready.get(image, 0)}
        for image in sorted(set(targets) | set(ready))
    ]
    if not options.json and not config.pool.enabled:
        print("the pool is disabled in the configuration (pool.enabled: false)")
    print_table(rows, ["image", "target", "ready"], options.json, "no pool images configured")
    return 0


def workspaces_list(options: argparse.Namespace) -> int:
    engine = Engine(settings(options))
    rows = asyncio.run(engine.list_workspaces())
    if not options.json:
        for row in rows:
            row["last_used"] = _age(row["last_used"]) + " ago" if row["last_used"] else None
            row["size"] = "%.1f MB" % (row.pop("size_bytes") / 1e6) if row["size_bytes"] >= 0 else "?"
    print_table(rows, ["name", "owner", "size", "in_use_by", "last_used"], options.json, "no workspaces")
    return 0


def workspaces_delete(options: argparse.Namespace) -> int:
    engine = Engine(settings(options))
    for name in options.names:
        asyncio.run(engine.delete_workspace(name, options.owner))
        print("deleted workspace %s" % name)
    return 0


def kernelspec_install(options: argparse.Namespace) -> int:
    from .kernelspecs import install

    prefix = sys.prefix if options.sys_prefix else options.prefix
    for path in install(settings(options), user=options.user, prefix=prefix):
        print("installed %s" % path)
    return 0


def add_commands(commands: Any) -> None:
    """Add the sessions, pool, workspaces and kernelspec subcommands to the ``sandkasten`` parser."""

    def command(group: Any, name: str, handler: Any, help_text: str, json_output: bool = False) -> Any:
        parser = group.add_parser(name, help=help_text)
        parser.add_argument(
            "--config", help="sandkasten.yaml (default: $%s, ./sandkasten.yaml, /etc/sandkasten/)" % CONFIG_ENV
        )
        if json_output:
            parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.set_defaults(run=handler)
        return parser

    sessions = commands.add_parser("sessions", help="list and destroy sessions").add_subparsers(
        dest="sessions_command", required=True
    )
    command(sessions, "list", sessions_list, "list sessions", json_output=True)
    command(sessions, "destroy", sessions_destroy, "destroy sessions (their workspaces stay)").add_argument(
        "ids", nargs="+", metavar="ID"
    )
    pool = commands.add_parser("pool", help="the warm pool").add_subparsers(dest="pool_command", required=True)
    command(pool, "status", pool_status, "warm sandboxes per image, against the configured targets", json_output=True)
    workspaces = commands.add_parser("workspaces", help="list and delete workspaces").add_subparsers(
        dest="workspaces_command", required=True
    )
    command(workspaces, "list", workspaces_list, "list workspaces with size, users and last use", json_output=True)
    delete = command(workspaces, "delete", workspaces_delete, "delete workspaces (refused while a session uses one)")
    delete.add_argument("names", nargs="+", metavar="NAME")
    delete.add_argument("--owner", help="the user whose workspaces they are (default: the server's own, owner '-')")
    kernelspec = commands.add_parser("kernelspec", help="Jupyter kernelspecs that run kernels in sandboxes")
    install = command(
        kernelspec.add_subparsers(dest="kernelspec_command", required=True),
        "install",
        kernelspec_install,
        'install sandkasten-python ("Python 3 (Sandkasten)") and one kernelspec per allowed image',
    )
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data directory")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment (sys.prefix)")
    where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")
