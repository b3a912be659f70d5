"""One parent cgroup for every sandbox, with a low CPU weight.

Docker puts each container's cgroup beside the host's own processes: under cgroup v1 all containers
together weigh as much as one host process, and under v2 each container weighs as much as a service.
A sandbox spinning on every core then delays the Jupyter Server that answers every user, and with it
every neighbour's exec (each passes through the server twice). Under a parent with a low weight,
sandboxes yield to the host's processes when the CPU is contended and still take all of it when it
is not (weights are work-conserving). Each sandbox's own limit (``cpus``) is unchanged.

This is done only where Docker writes cgroups itself (its ``cgroupfs`` driver) and this process may
write them too (root, on the engine's host); elsewhere sandboxes stay where Docker puts them.
"""

from __future__ import annotations

import logging
import os
import threading

import docker
import docker.errors

log = logging.getLogger(__name__)

PARENT = "sandkasten"
ROOT = "/sys/fs/cgroup"
# A host process weighs 1024 (v1), a cgroup 100 (v2); all sandboxes together weigh half of that. Less
# starves the freezer: a pause needs each sandbox process to run once, while runc polls at full weight.
V1_SHARES = 512
V2_WEIGHT = 50

_parents: dict[str, str | None] = {}
_lock = threading.Lock()


def sandbox_cgroup_parent(client: docker.DockerClient) -> str | None:
    """The ``cgroup_parent`` for new sandboxes, made ready once per Docker engine; None: Docker's default."""
    key = str(client.api.base_url)
    with _lock:
        if key not in _parents:
            _parents[key] = _prepare(client)
        return _parents[key]


def _prepare(client: docker.DockerClient) -> str | None:
    try:
        driver = client.info().get("CgroupDriver")
    except docker.errors.APIError as exc:
        log.info("sandboxes keep Docker's cgroups: docker info failed (%s)", exc)
        return None
    if driver != "cgroupfs":
        log.info("sandboxes keep Docker's cgroups: its cgroup driver is %s, not cgroupfs", driver)
        return None
    unified = os.path.exists(os.path.join(ROOT, "cgroup.controllers"))
    folder = os.path.join(ROOT, PARENT) if unified else os.path.join(ROOT, "cpu", PARENT)
    name, value = ("cpu.weight", V2_WEIGHT) if unified else ("cpu.shares", V1_SHARES)
    try:
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "w") as f:
            f.write("%d\n" % value)
    except OSError as exc:
        log.info("sandboxes keep Docker's cgroups: cannot set %s in %s (%s)", name, folder, exc.strerror)
        return None
    return "/" + PARENT


def container_cgroup_dir(client: docker.DockerClient, container_id: str, controller: str) -> str | None:
    """``cgroup_dir`` of a running container's first process; None where it is not running or unreadable."""
    try:
        pid = int(client.api.inspect_container(container_id)["State"]["Pid"])
    except docker.errors.APIError:
        return None
    return cgroup_dir(pid, controller) if pid > 0 else None


def cgroup_dir(pid: int, controller: str) -> str | None:
    """The host folder of the cgroup that process ``pid`` is in, for ``controller`` (v1: e.g. "memory",
    "cpuacct"; v2: any, as there is one hierarchy); None where it cannot be read."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    entries = [line.split(":", 2)[1:] for line in lines]  # [controllers, path]; v2's has no controllers
    for controllers, path in entries:
        if controller in controllers.split(","):
            for mount in (os.path.join(ROOT, controller), os.path.join(ROOT, controllers)):
                if os.path.isdir(mount + path):
                    return mount + path
    unified = [path for controllers, path in entries if controllers == ""]
    if unified and os.path.isdir(ROOT + unified[0]) and os.path.exists(os.path.join(ROOT, "cgroup.controllers")):
        return ROOT + unified[0]
    return None
