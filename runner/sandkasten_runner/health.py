"""Resource readings for the ``health`` and ``usage`` ops: processes, memory and CPU time of the sandbox."""

import os
from typing import Dict, Optional, Set, Tuple

from .processes import descendants, iter_processes

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# cgroup v2, then v1: (usage, limit). Docker mounts the container's own cgroup here.
_CGROUP_MEMORY = (
    ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.max"),
    ("/sys/fs/cgroup/memory/memory.usage_in_bytes", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def cgroup_memory() -> Tuple[Optional[int], Optional[int]]:
    """The sandbox's memory (usage, limit) in bytes from its cgroup; None where unknown or unlimited."""
    for usage_path, limit_path in _CGROUP_MEMORY:
        usage = _read_int(usage_path)
        if usage is not None:
            limit = _read_int(limit_path)
            if limit is not None and limit >= 1 << 60:  # v1 writes "no limit" as a huge number
                limit = None
            return usage, limit
    return None, None


_CGROUP_CPU_NS = (
    ("/sys/fs/cgroup/cpu.stat", 1000),  # v2: a "usage_usec N" line
    ("/sys/fs/cgroup/cpuacct/cpuacct.usage", 1),  # v1: nanoseconds
)


def cgroup_cpu_ns() -> Optional[int]:
    """CPU time the sandbox's cgroup has used, in ns."""
    for path, scale in _CGROUP_CPU_NS:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            fields = line.split()
            if len(fields) == 1 and fields[0].isdigit():
                return int(fields[0]) * scale
            if len(fields) == 2 and fields[0] == "usage_usec" and fields[1].isdigit():
                return int(fields[1]) * scale
    return None


_CLOCK_TICK_NS = 10**9 // os.sysconf("SC_CLK_TCK")


def own_cpu_ns(tree: Optional[Set[int]] = None) -> int:
    """CPU time of this process, its reaped children and the live processes of ``tree`` other than
    itself, in ns (a runner on a host has no cgroup of its own; its shell is a live child)."""
    t = os.times()
    total = int((t.user + t.system + t.children_user + t.children_system) * 1e9)
    for pid in tree or ():
        if pid != os.getpid():
            total += _process_cpu_ticks(pid) * _CLOCK_TICK_NS
    return total


def _process_cpu_ticks(pid: int) -> int:
    """CPU time of a live process and of the children it reaped, in clock ticks (0 if it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    except (OSError, IndexError):
        return 0
    return sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime: proc(5) fields 14-17


def sandbox_usage() -> Dict[str, Optional[int]]:
    """Process count, memory and CPU time of the sandbox.

    As PID 1 of a container the runner sees exactly the sandbox's processes and
    its cgroup. Run on a host (tests), it counts its own process tree instead.
    """
    me = os.getpid()
    tree: Optional[Set[int]] = None
    if me == 1:
        rss = {pid: pages for pid, _ppid, _sid, pages in iter_processes()}
        memory, limit = cgroup_memory()
        cpu_ns = cgroup_cpu_ns()
    else:
        tree = set(descendants(me)) | {me}
        rss = {pid: pages for pid, _ppid, _sid, pages in iter_processes() if pid in tree}
        memory, limit = None, None
        cpu_ns = None
    if cpu_ns is None:
        cpu_ns = own_cpu_ns(tree if tree is not None else set(rss))
    rss_bytes = sum(rss.values()) * PAGE_SIZE
    return {
        "pids": len(rss),
        "rss_bytes": rss_bytes,
        "memory_bytes": memory if memory is not None else rss_bytes,
        "memory_limit_bytes": limit,
        "cpu_ns": cpu_ns,
    }


# cgroup v2, then v1: files with an "oom_kill N" line counting the sandbox's OOM kills.
_CGROUP_OOM = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def oom_kills() -> Optional[int]:
    """How many processes the kernel has OOM-killed in the sandbox's cgroup (None off a cgroup)."""
    for path in _CGROUP_OOM:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) == 2 and fields[0] == "oom_kill" and fields[1].isdigit():
                return int(fields[1])
    return None
