"""The ``sandkasten`` command: one module per command group, on top of the engine and the server.

sandkasten serve [--config FILE] [--no-build] [-- JUPYTER SERVER OPTIONS]
sandkasten images build [NAME ...] [--force] [--mirror URL] | images status
sandkasten images add NAME (--dockerfile PATH [--context DIR] | --from IMAGE) | images list | images remove NAME
sandkasten run [--image NAME] [--timeout S] [--network] COMMAND
sandkasten sessions list|destroy|pause|resume|snapshot|fork, snapshots list|delete
sandkasten pool status, workspaces list|delete
sandkasten kernelspec install [--user | --sys-prefix | --prefix DIR]
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import version

from sandkasten_kernel.engine import EngineError

from . import images, kernelspec, pool, run, serve, sessions, snapshots, workspaces

__all__ = ["main"]

COMMAND_GROUPS = (serve, images, run, sessions, snapshots, pool, workspaces, kernelspec)


def parser() -> argparse.ArgumentParser:
    """The whole command line: each group adds its own subcommands."""
    root = argparse.ArgumentParser(
        prog="sandkasten", description="Sandkasten: Docker sandboxes for agents and notebooks"
    )
    root.add_argument("--version", action="version", version="%(prog)s " + version("sandkasten-kernel"))
    commands = root.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_to(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    """Run one command; engine errors become one line on stderr and exit 1, never a traceback."""
    options = parser().parse_args(argv)
    try:
        code: int = options.run(options)
    except EngineError as exc:
        print("sandkasten: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sandkasten: interrupted", file=sys.stderr)
        return 130
    return code
