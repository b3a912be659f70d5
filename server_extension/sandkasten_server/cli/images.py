"""``sandkasten images build|status|add|list|remove``: the sandbox images, built without a registry.

The built-in images (base, python, node) are Docker's alone; the images an admin adds
belong to a state directory's catalog (its store), so ``add``, ``list``, ``remove`` and
``build`` read sandkasten.yaml (``--config``) to find it.
"""

from __future__ import annotations

import argparse
import getpass
import time
from typing import Any

from sandkasten_kernel.engine import (
    DEFAULT_MIRROR,
    IMAGES,
    CustomImages,
    Engine,
    ImageBuilder,
    ImageError,
    Settings,
    builtin_listing,
    connect,
    open_state_store,
)
from sandkasten_kernel.engine.images import BuildOutcome

from .common import CONFIG_HELP, add_command, add_group, has_state, print_table, require_state, settings, with_engine


def add_to(commands: Any) -> None:
    group = add_group(commands, "images", "build, add and inspect the sandbox images")
    build = group.add_parser(
        "build", help="build the images that are missing or older than their sources (parents first)"
    )
    build.add_argument(
        "names", nargs="*", metavar="NAME", help="%s or an added image (default: all)" % ", ".join(IMAGES)
    )
    build.add_argument("--force", action="store_true", help="rebuild even images that are current")
    build.add_argument(
        "--mirror", default=DEFAULT_MIRROR, help="Debian mirror for debootstrap when no base image can be pulled"
    )
    build.add_argument("--config", help=CONFIG_HELP + " (its state directory holds the added images)")
    build.set_defaults(run=_build)
    status = group.add_parser("status", help="show whether each built-in image matches its sources (exit 1 if not)")
    status.add_argument("--json", action="store_true", help="print JSON (with each image's id and size) instead")
    status.set_defaults(run=_status)

    add = add_command(
        group, "add", _add, "add an image from a Dockerfile or an existing local image (the runner goes on top)"
    )
    add.add_argument("name", metavar="NAME", help="what sessions, pool.images and allowed_images call it")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--dockerfile", metavar="PATH", help="build this Dockerfile first")
    source.add_argument("--from", dest="from_image", metavar="IMAGE", help="start from this local image")
    add.add_argument("--context", metavar="DIR", help="the Dockerfile's build context (default: its folder)")
    add_command(
        group, "list", _list, "list the built-in and added images with size, parent and state", json_output=True
    )
    remove = add_command(group, "remove", _remove, "remove an added image (refused while sessions or the pool use it)")
    remove.add_argument("name", metavar="NAME")


def _progress(message: str) -> None:
    print(message, flush=True)


def _custom_images(config: Settings) -> CustomImages:
    return CustomImages(open_state_store(config.server.state_dir), connect(), progress=_progress)


def _done(started: float, outcomes: list[BuildOutcome]) -> None:
    built = [outcome.tag for outcome in outcomes if outcome.built]
    print(
        "done in %.1f s: %s"
        % (time.monotonic() - started, ("built " + ", ".join(built)) if built else "every image was current")
    )


def _build(options: argparse.Namespace) -> int:
    started = time.monotonic()
    config = settings(options)
    images = _custom_images(config) if has_state(config) else None
    known = [*IMAGES, *sorted(images.catalog.names() if images else [])]
    unknown = [name for name in options.names if name not in known]
    if unknown:
        raise ImageError("unknown image %r; known: %s" % (unknown[0], ", ".join(known)))
    builtin = [name for name in options.names if name in IMAGES]
    added = [name for name in options.names if name not in IMAGES]
    outcomes = []
    if builtin or not options.names:
        builder = ImageBuilder(connect(), progress=_progress, mirror=options.mirror)
        outcomes += builder.build(builtin or None, force=options.force)
    if images is not None and (added or not options.names):
        outcomes += images.build(added or None, force=options.force)
    _done(started, outcomes)
    return 0


def _status(options: argparse.Namespace) -> int:
    rows = ImageBuilder(connect(), progress=_progress).status()
    print_table(rows, ["tag", "state"], options.json, "no images")
    return 0 if all(row["current"] for row in rows) else 1


def _add(options: argparse.Namespace) -> int:
    started = time.monotonic()
    config = settings(options)
    images = _custom_images(config)
    outcomes = images.add(
        options.name,
        dockerfile=options.dockerfile,
        context=options.context,
        from_image=options.from_image,
        added_by=getpass.getuser(),
    )
    _done(started, outcomes)
    kernel = "with a Jupyter kernel" if images.get(options.name).kernel else "without a Jupyter kernel (no ipykernel)"
    print("added %s as sandkasten/runtime:%s, %s" % (options.name, options.name, kernel))
    if not config.allows_image(options.name):
        print("sessions may use it once security.allowed_images lists %s" % options.name)
    return 0


def _list(options: argparse.Namespace) -> int:
    config = settings(options)
    if has_state(config):
        rows = with_engine(config, Engine.list_images)
    else:  # nothing was added here yet: the built-in images alone, and no state directory made for it
        rows = [dict(row, allowed=config.allows_image(row["name"]), in_use=False) for row in builtin_listing(connect())]
    if options.json:
        print_table(rows, [], True, "")
        return 0
    for row in rows:
        size = row["size_bytes"]
        row["size"] = "%.0f MB" % (size / 1e6) if size is not None else None
        row["kernel"] = "yes" if row["kernel"] else "no"
        row["allowed"] = "yes" if row["allowed"] else "no"
        row["in_use"] = "yes" if row["in_use"] else "no"
    print_table(rows, ["name", "kind", "parent", "size", "state", "kernel", "allowed", "in_use"], False, "no images")
    for row in rows:
        if row["error"]:  # its first line; --json has all of it
            print("%s: %s" % (row["name"], row["error"].splitlines()[0]))
    return 0


def _remove(options: argparse.Namespace) -> int:
    config = settings(options)
    require_state(config, "image %r" % options.name)
    with_engine(config, lambda engine: engine.remove_image(options.name))
    print("removed %s" % options.name)
    return 0
