"""Whose a named workspace is, and the Docker volume and disk image it lives in.

Users choose workspace names, so one user's "data" must never be another's: a
workspace is a name within an owner. The server's own workspaces (owner None: a
single-user server's, or those of a process that knows no user, such as an agent
script's kernels) keep the volume names they always had, ``sandkasten-ws-<name>``,
so existing workspaces keep working. A user's live in
``sandkasten-wsu-<tag>-<name>``, where the tag is a hash of the state directory and
the user name: any user name (spaces, slashes, non-ASCII) still gives a valid
Docker name, and two servers sharing one Docker engine never share a user's
volume. The two prefixes differ before any name begins, so no name in one
namespace can be spelled as a volume of the other.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
SERVER_PREFIX = "sandkasten-ws-"
USER_PREFIX = "sandkasten-wsu-"
TAG_CHARS = 16  # 64 bits of SHA-256: no user name can be made to collide with another's


@dataclass(frozen=True)
class WorkspaceRef:
    """A named workspace within its owner, with the volume and disk directory it lives in."""

    name: str
    owner: str | None  # None: the server's own
    tag: str | None  # derived from the owner (None for the server's own)

    @property
    def volume(self) -> str:
        """The name of the Docker volume the workspace lives in."""
        if self.tag is None:
            return SERVER_PREFIX + self.name
        return "%s%s-%s" % (USER_PREFIX, self.tag, self.name)

    @property
    def disk_dir(self) -> str:
        """Where the workspace's image and mount point live, relative to the workspaces' root.
        The server's own keep theirs at the root (images/, mounts/), a user's under users/<tag>/."""
        return "" if self.tag is None else os.path.join("users", self.tag)


def workspace_ref(state_dir: str, name: str, owner: str | None) -> WorkspaceRef:
    """The workspace ``name`` of ``owner`` on the server whose state is in ``state_dir``."""
    if owner is None:
        return WorkspaceRef(name, None, None)
    key = "%s\0%s" % (os.path.realpath(state_dir), owner)
    return WorkspaceRef(name, owner, hashlib.sha256(key.encode()).hexdigest()[:TAG_CHARS])


def valid_name(name: str) -> bool:
    """Whether ``name`` may name a workspace: 1-63 letters, digits, '.', '_' or '-'."""
    return WORKSPACE_NAME.fullmatch(name) is not None  # fullmatch: "$" alone lets a final newline in


def name_from_template(template: str, username: str) -> str:
    """A workspace name from ``template`` with ``{username}`` filled in; characters a workspace name cannot
    hold become ``-`` (the name is within its owner's, so two users' names never meet)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", template.format(username=username)).lstrip("-_.")[:63]
    return name or "workspace"
