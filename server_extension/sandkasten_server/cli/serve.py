"""``sandkasten serve``: Jupyter Server with the Sandkasten API."""

from __future__ import annotations

import argparse
from typing import Any

from .common import CONFIG_HELP


def add_to(commands: Any) -> None:
    command = commands.add_parser(
        "serve", help="run Jupyter Server with the Sandkasten API (builds missing images first)"
    )
    command.add_argument("--config", help=CONFIG_HELP + "; without one, it makes the one in ~/.local/share")
    command.add_argument("--no-build", action="store_true", help="do not build missing images first")
    command.add_argument(
        "--show-token",
        action="store_true",
        help="print the dashboard URL with the API key in it (for your own machine; logs keep what is printed)",
    )
    command.add_argument("server_args", nargs=argparse.REMAINDER, help="options passed on to Jupyter Server, after --")
    command.set_defaults(run=_serve)


def _serve(options: argparse.Namespace) -> int:
    from .. import serve as server  # Jupyter Server's imports: only this command pays for them

    extra = [arg for arg in options.server_args if arg != "--"]
    return server.serve(options.config, extra, build=not options.no_build, show_token=options.show_token)
