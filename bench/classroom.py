"""A class starting at once: N students each start a kernel through the example JupyterHub deployment.

    .venv/bin/python -m bench.classroom [--quick] [--students 30] [--out FILE.json]

examples/jupyterhub runs (a real JupyterHub and proxy, Sandkasten as its service);
N students each POST ``/services/sandkasten/api/kernels`` with their own Hub token
at the same moment, which is what each student's Jupyter server sends when the
student opens a notebook (the servers themselves are left out: on one machine
thirty of them would measure the machine). Twice: with the pool pre-warmed for
the class (a ``pool.schedule`` entry in force, as before a lecture), and with the
pool at its everyday size of 2. The figure is the time until every student has a
kernel, and each student's wait.

Writes bench/results/<date>-classroom.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import print_rows, summary, write_results
from tests.classroom import hub as hub_harness

EVERYDAY_POOL = 2
KERNELS = "/services/sandkasten/api/kernels"  # what a student's server sends, through the Hub's proxy


def class_config(students: int, prewarmed: bool) -> dict[str, Any]:
    pool: dict[str, Any] = {"images": {"python": EVERYDAY_POOL}, "with_kernel": True, "parallel_starts": 4}
    if prewarmed:  # the entry that fired before the lecture: in force for the whole run
        pool["schedule"] = [{"cron": "* * * * *", "images": {"python": students}}]
    return {
        "pool": pool,
        "quota": {"max_sessions": students * 2, "max_sessions_per_user": 2, "max_cold_starts": students},
        "session": {"idle_timeout_s": 3600},
        "defaults": {"memory_mb": 256},
    }


def wait_for_pool(hub: hub_harness.Hub, size: int, timeout: float = 900) -> float:
    """Seconds until the service's pool holds ``size`` ready python sandboxes (the instructor asks)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        status, pool = hub.sandkasten("GET", "pool", hub_harness.INSTRUCTOR)
        images = pool.get("images", {}) if status == 200 else {}
        if sum(entry.get("ready", 0) for entry in images.values()) >= size:
            return time.monotonic() - started
        time.sleep(1)
    raise RuntimeError("the pool did not reach %d in %d s" % (size, timeout))


def lecture(students: int, prewarmed: bool) -> dict[str, Any]:
    names = ["s%02d" % i for i in range(1, students + 1)]
    state = Path(tempfile.mkdtemp(prefix="sk-classroom-"))
    hub = hub_harness.start_hub(state, class_config(students, prewarmed), tuple(names))
    try:
        warmed_s = wait_for_pool(hub, students if prewarmed else EVERYDAY_POOL)
        tokens = {name: hub.token(name) for name in names}

        def start(name: str) -> float:
            began = time.monotonic()
            status, body = hub.call(
                "POST", "/services/sandkasten/api/kernels", tokens[name], {"name": "sandkasten-python"}
            )
            assert status == 201, body
            return (time.monotonic() - began) * 1000

        began = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(students) as pool:
            waits = list(pool.map(start, names))
        everyone_s = time.monotonic() - began
        return {
            "students": students,
            "pool_warmed_s": round(warmed_s, 1),
            "everyone_s": round(everyone_s, 2),
            "each": summary(waits),
        }
    finally:
        hub_harness.stop_hub(hub)
        hub_harness.remove_leftovers(hub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 students (CI checks it runs)")
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/)")
    options = parser.parse_args()
    students = 4 if options.quick else options.students
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "quick": options.quick,
        "prewarmed": lecture(students, prewarmed=True),
        "everyday_pool": lecture(students, prewarmed=False),
    }
    rows = []
    for key, label in (("prewarmed", "pre-warmed by the schedule"), ("everyday_pool", "pool of %d" % EVERYDAY_POOL)):
        part = results[key]
        rows.append(
            (
                "%d students at once, %s" % (students, label),
                "all in %.2f s; each p50 %.0f ms, p99 %.0f ms"
                % (part["everyone_s"], part["each"]["median_ms"], part["each"]["p99_ms"]),
            )
        )
    print_rows(rows)
    write_results("classroom", results, options.quick, options.out)


if __name__ == "__main__":
    main()
