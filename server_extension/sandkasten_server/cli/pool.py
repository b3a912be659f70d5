"""``sandkasten pool status``: warm sandboxes per image, as Docker holds them, against the targets."""

from __future__ import annotations

import argparse
from typing import Any

from sandkasten_kernel.engine import Engine

from .common import add_command, add_group, has_state, print_table, settings, with_engine


def add_to(commands: Any) -> None:
    group = add_group(commands, "pool", "the warm pool")
    add_command(group, "status", _status, "warm sandboxes per image, against the configured targets", json_output=True)


def _status(options: argparse.Namespace) -> int:
    config = settings(options)

    ready = with_engine(config, Engine.warm_in_docker) if has_state(config) else {}
    targets = {config.resolve_image(name): count for name, count in config.pool.images.items()}
    rows = [
        {"image": image, "target": targets.get(image, 0), "ready": ready.get(image, 0)}
        for image in sorted(set(targets) | set(ready))
    ]
    if not options.json and not config.pool.enabled:
        print("the pool is disabled in the configuration (pool.enabled: false)")
    print_table(rows, ["image", "target", "ready"], options.json, "no pool images configured")
    return 0
