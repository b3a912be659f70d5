"""What several command groups share: the ``--config`` option, and tables on stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sandkasten_kernel.engine import CONFIG_ENV, Engine, EngineError, Settings, find_config, load_settings, store_path

Command = Callable[[argparse.Namespace], int]
CONFIG_HELP = (
    "sandkasten.yaml (default: the first of $%s, ./sandkasten.yaml, ~/.local/share/sandkasten/sandkasten.yaml "
    "(made by `sandkasten serve`), /etc/sandkasten/sandkasten.yaml)" % CONFIG_ENV
)
T = TypeVar("T")


def add_group(commands: Any, name: str, help_text: str) -> Any:
    """A command group (``sandkasten NAME ...``); its subcommands are added to what this returns."""
    return commands.add_parser(name, help=help_text).add_subparsers(dest=name + "_command", required=True)


def add_command(
    group: Any, name: str, run: Command, help_text: str, json_output: bool = False
) -> argparse.ArgumentParser:
    """A subcommand that reads sandkasten.yaml (``--config``), optionally with ``--json``."""
    command: argparse.ArgumentParser = group.add_parser(name, help=help_text)
    command.add_argument("--config", help=CONFIG_HELP)
    if json_output:
        command.add_argument("--json", action="store_true", help="print JSON instead of a table")
    command.set_defaults(run=run)
    return command


def settings(options: argparse.Namespace) -> Settings:
    """The settings of the configuration ``--config`` names, or the one found in the usual places."""
    return load_settings(find_config(options.config))


def has_state(config: Settings) -> bool:
    """Whether anything has used ``config``'s state directory yet; listing commands never create it."""
    return os.path.exists(store_path(config.server.state_dir))


def require_state(config: Settings, what: str) -> None:
    """Refuse to act on ``what`` where nothing has used the state directory (rather than create one)."""
    if not has_state(config):
        raise EngineError(
            "no %s: nothing has used the state directory %s yet (is this the server's configuration?)"
            % (what, config.server.state_dir)
        )


def with_engine(config: Settings, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Run ``work`` on an engine over ``config``'s state, then close it.

    The engine neither reconciles nor keeps a pool: a server may own the state
    directory, and these commands must not touch what they do not know.
    """

    async def run() -> T:
        engine = Engine(config)
        try:
            return await work(engine)
        finally:
            await engine.close()

    return asyncio.run(run())


def read_state(options: argparse.Namespace, read: Callable[[Engine], Awaitable[list[T]]]) -> list[T]:
    """What ``read`` finds in the state of ``--config``'s configuration; nothing where nothing has used its state
    directory yet (which a listing never creates)."""
    config = settings(options)
    return with_engine(config, read) if has_state(config) else []


def delete_each(
    options: argparse.Namespace, what: str, delete: Callable[[Engine, str, str | None], Awaitable[None]]
) -> int:
    """Delete each of ``options.names`` (``options.owner``'s) with ``delete``, and say so: the ``delete`` commands."""

    async def each(engine: Engine) -> None:
        for name in options.names:
            await delete(engine, name, options.owner)
            print("deleted %s %s" % (what, name))

    config = settings(options)
    require_state(config, "%s %r" % (what, options.names[0]))
    with_engine(config, each)
    return 0


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], as_json: bool, empty: str) -> None:
    """``rows`` as an aligned table of ``columns`` (or as JSON); ``empty`` when there are none."""
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


def age(since: float) -> str:
    """Time since ``since`` (epoch seconds), as 4m05s or 2h10m."""
    seconds = int(time.time() - since)
    return "%dh%02dm" % (seconds // 3600, seconds // 60 % 60) if seconds >= 3600 else "%dm%02ds" % divmod(seconds, 60)


def megabytes(size_bytes: int) -> str:
    """A size in bytes as 12.3 MB (``?`` where it could not be read: -1)."""
    return "%.1f MB" % (size_bytes / 1e6) if size_bytes >= 0 else "?"
