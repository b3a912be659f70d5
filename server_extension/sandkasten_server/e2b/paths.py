"""E2B's paths and Sandkasten's: E2B's home directory, ``/home/user``, is the sandbox's ``/workspace``.

E2B's SDKs and the code written for them use ``/home/user`` (the default
working directory, where relative paths go). Here the workspace is what
outlives a sandbox and what the file operations reach, so E2B's home is it.
Other absolute paths are left as they are.
"""

from __future__ import annotations

E2B_HOME = "/home/user"
WORKSPACE = "/workspace"


def to_sandbox(path: str | None) -> str:
    """The sandbox's path for an E2B path (empty: the home directory)."""
    if not path:
        return WORKSPACE
    if path == "~" or path.startswith("~/"):
        path = E2B_HOME + path[1:]
    if path == E2B_HOME or path.startswith(E2B_HOME + "/"):
        return WORKSPACE + path[len(E2B_HOME) :]
    if not path.startswith("/"):
        return WORKSPACE + "/" + path
    return path


def to_e2b(path: str) -> str:
    """The E2B path for a sandbox path (the reverse of ``to_sandbox``)."""
    if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
        return E2B_HOME + path[len(WORKSPACE) :]
    return path
