"""``sandkasten pool status``: warm sandboxes per image, as Docker holds them, against the configured sizes,
and what ``pool.schedule`` says now."""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from typing import Any

from sandkasten_kernel.engine import Engine
from sandkasten_kernel.engine.pool_demand import PoolSize
from sandkasten_kernel.engine.pool_scheduler import describe_schedule, schedule_now, scheduled_sizes

from .common import add_command, add_group, has_state, print_table, settings, with_engine


def add_to(commands: Any) -> None:
    group = add_group(commands, "pool", "the warm pool")
    add_command(
        group,
        "status",
        _status,
        "warm sandboxes per image against the sizes that hold now, and the schedule",
        json_output=True,
    )


def _status(options: argparse.Namespace) -> int:
    config = settings(options)

    ready = with_engine(config, Engine.warm_in_docker) if has_state(config) else {}
    schedule = config.pool_schedule()
    current, upcoming = schedule_now(schedule, time.time())
    sizes = scheduled_sizes(config, current)  # pool.images, with the entry's that holds now over it
    rows = [
        {"image": image, "min": size.min, "max": size.max, "ready": ready.get(image, 0)}
        for image, size in ((image, sizes.get(image, PoolSize(0, 0))) for image in sorted(set(sizes) | set(ready)))
    ]
    if not options.json and not config.pool.enabled:
        print("the pool is disabled in the configuration (pool.enabled: false)")
    print_table(rows, ["image", "min", "max", "ready"], options.json, "no pool images configured")
    status = describe_schedule(schedule, current, upcoming)
    if status is not None and not options.json:
        print("\nschedule, in %s:" % status["timezone"])
        for label, firing, key in (("now ", status["current"], "since"), ("next", status["next"], "at")):
            print("  %s  %s" % (label, _firing(firing, key, schedule.zone) if firing else "none (within a week)"))
    return 0


def _firing(firing: dict[str, Any], key: str, zone: Any) -> str:
    """One entry of the schedule's status: its index, cron, sizes and when it fired or fires."""
    when = datetime.fromtimestamp(firing[key], zone).strftime("%a %Y-%m-%d %H:%M")
    sizes = ", ".join("%s: %s" % (image, _size(size)) for image, size in firing["images"].items())
    return "entry %d (%s) {%s}, %s %s" % (firing["index"], firing["cron"], sizes, key, when)


def _size(size: Any) -> str:
    return "%s-%s" % (size["min"], size["max"]) if isinstance(size, dict) else str(size)
