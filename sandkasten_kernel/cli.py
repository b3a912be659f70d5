"""The ``sandkasten`` command.

sandkasten images build [NAME ...] [--force] [--mirror URL]
sandkasten images status
"""

from __future__ import annotations

import argparse
import sys
import time

from .engine.docker_backend import connect
from .engine.errors import EngineError
from .engine.images import DEFAULT_MIRROR, IMAGES, ImageBuilder


def _progress(message: str) -> None:
    print(message, flush=True)


def _images_build(options: argparse.Namespace) -> int:
    started = time.monotonic()
    builder = ImageBuilder(connect(), progress=_progress, mirror=options.mirror)
    outcomes = builder.build(options.names or None, force=options.force)
    built = [o.tag for o in outcomes if o.built]
    print(
        "done in %.1f s: %s"
        % (time.monotonic() - started, ("built " + ", ".join(built)) if built else "every image was current")
    )
    return 0


def _images_status(options: argparse.Namespace) -> int:
    rows = ImageBuilder(connect(), progress=_progress).status()
    for row in rows:
        state = "current" if row["current"] else ("outdated" if row["present"] else "missing")
        print("%-28s %s" % (row["tag"], state))
    return 0 if all(row["current"] for row in rows) else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sandkasten", description="Sandkasten: Docker sandboxes for agents and notebooks"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    images = commands.add_parser("images", help="build and inspect the sandbox images")
    image_commands = images.add_subparsers(dest="images_command", required=True)
    build = image_commands.add_parser(
        "build", help="build the images that are missing or older than their sources (parents first)"
    )
    build.add_argument("names", nargs="*", metavar="NAME", help="%s (default: all)" % ", ".join(IMAGES))
    build.add_argument("--force", action="store_true", help="rebuild even images that are current")
    build.add_argument(
        "--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap when no base image can be pulled"
    )
    build.set_defaults(run=_images_build)
    status = image_commands.add_parser("status", help="show whether each image matches its sources (exit 1 if not)")
    status.set_defaults(run=_images_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    options = _parser().parse_args(argv)
    try:
        code: int = options.run(options)
    except EngineError as exc:
        print("sandkasten: error: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("sandkasten: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
