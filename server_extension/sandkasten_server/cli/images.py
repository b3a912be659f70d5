"""``sandkasten images build|status``: the sandbox images, built without a registry."""

from __future__ import annotations

import argparse
import time
from typing import Any

from sandkasten_kernel.engine import DEFAULT_MIRROR, IMAGES, ImageBuilder, connect

from .common import add_group, print_table


def add_to(commands: Any) -> None:
    group = add_group(commands, "images", "build and inspect the sandbox images")
    build = group.add_parser(
        "build", help="build the images that are missing or older than their sources (parents first)"
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="%s (default: all)" % ", ".join(IMAGES))
    build.add_argument("--force", action="store_true", help="rebuild even images that are current")
    build.add_argument(
        "--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap when no base image can be pulled"
    )
    build.set_defaults(run=_build)
    status = group.add_parser("status", help="show whether each image matches its sources (exit 1 if not)")
    status.add_argument("--json", action="store_true", help="print JSON (with each image's id and size) instead")
    status.set_defaults(run=_status)


def _progress(message: str) -> None:
    print(message, flush=True)


def _build(options: argparse.Namespace) -> int:
    started = time.monotonic()
    outcomes = ImageBuilder(connect(), progress=_progress, mirror=options.mirror).build(
        options.names or None, force=options.force
    )
    built = [outcome.tag for outcome in outcomes if outcome.built]
    print(
        "done in %.1f s: %s"
        % (time.monotonic() - started, ("built " + ", ".join(built)) if built else "every image was current")
    )
    return 0


def _status(options: argparse.Namespace) -> int:
    rows = ImageBuilder(connect(), progress=_progress).status()
    print_table(rows, ["tag", "state"], options.json, "no images")
    return 0 if all(row["current"] for row in rows) else 1
