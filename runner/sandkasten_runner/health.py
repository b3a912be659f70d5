"""Resource readings for the ``health`` op: processes and memory of the sandbox."""

import os
from typing import Dict, Optional, Tuple

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
    for usage_path, limit_path in _CGROUP_MEMORY:
        usage = _read_int(usage_path)
        if usage is not None:
            limit = _read_int(limit_path)
            if limit is not None and limit >= 1 << 60:  # v1 writes "no limit" as a huge number
                limit = None
            return usage, limit
    return None, None


def sandbox_usage() -> Dict[str, Optional[int]]:
    """Process count and memory of the sandbox.

    As PID 1 of a container the runner sees exactly the sandbox's processes and
    its cgroup. Run on a host (tests), it counts its own process tree instead.
    """
    me = os.getpid()
    if me == 1:
        rss = {pid: pages for pid, _ppid, _sid, pages in iter_processes()}
        memory, limit = cgroup_memory()
    else:
        tree = set(descendants(me)) | {me}
        rss = {pid: pages for pid, _ppid, _sid, pages in iter_processes() if pid in tree}
        memory, limit = None, None
    rss_bytes = sum(rss.values()) * PAGE_SIZE
    return {
        "pids": len(rss),
        "rss_bytes": rss_bytes,
        "memory_bytes": memory if memory is not None else rss_bytes,
        "memory_limit_bytes": limit,
    }
