"""``sandkasten pool status``: warm sandboxes per image, as Docker holds them, against the configured sizes."""

from __future__ import annotations

import argparse
from typing import Any

from sandkasten_kernel.engine import Engine
from sandkasten_kernel.engine.pool_demand import PoolSize

from .common import add_command, add_group, has_state, print_table, settings, with_engine


def add_to(commands: Any) -> None:
    group = add_group(commands, "pool", "the warm pool")
    add_command(group, "status", _status, "warm sandboxes per image, against the configured sizes", json_output=True)


def _status(options: argparse.Namespace) -> int:
    config = settings(options)

    ready = with_engine(config, Engine.warm_in_docker) if has_state(config) else {}
    sizes = config.pool_sizes()
    rows = [
        {"image": image, "min": size.min, "max": size.max, "ready": ready.get(image, 0)}
        for image, size in ((image, sizes.get(image, PoolSize(0, 0))) for image in sorted(set(sizes) | set(ready)))
    ]
    if not options.json and not config.pool.enabled:
        print("the pool is disabled in the configuration (pool.enabled: false)")
    print_table(rows, ["image", "min", "max", "ready"], options.json, "no pool images configured")
    return 0
