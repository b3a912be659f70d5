"""Letting one local user, and only that user, connect to a sandbox's kernel.

A Jupyter client in another process (an agent's ``AsyncKernelManager`` started
by a user who is not the server's) connects to the kernel's Unix sockets by
path. Run directories are closed to everyone but root and the sandbox's group,
and pinned sockets are root's, so the host adds a POSIX ACL entry for that one
user: search on the directories from the state directory down to the run
directory, read and write on the kernel's sockets. Nobody else gains anything.

Names in the run directory are the sandbox's: sockets are opened through the
checked ``run_dir_names`` descriptors, never followed by path.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
import struct
from collections.abc import Iterable

from .errors import EngineError, NotAllowed
from .run_dir_names import open_run_dir, open_socket_entry

ACL_XATTR = "system.posix_acl_access"
ACL_VERSION = 2
ACL_UNDEFINED_ID = 0xFFFFFFFF
# Entry tags (linux/posix_acl.h).
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
SEARCH, READ_WRITE = 0o1, 0o6

Entry = tuple[int, int, int]  # (tag, permissions, id)


def grant_kernel_access(state_dir: str, run_dir: str, socket_names: Iterable[str], uid: int) -> None:
    """Let ``uid`` (alone) reach the kernel sockets ``socket_names`` of the run directory ``run_dir``."""
    check_reachable(state_dir, uid)
    for directory in _host_directories(state_dir, run_dir):
        add_acl_entry(directory, uid, SEARCH)
    dir_fd = open_run_dir(run_dir)
    try:
        add_acl_entry("/proc/self/fd/%d" % dir_fd, uid, SEARCH)
    finally:
        os.close(dir_fd)
    for name in socket_names:
        fd = open_socket_entry(run_dir, name)
        try:
            add_acl_entry("/proc/self/fd/%d" % fd, uid, READ_WRITE)
        finally:
            os.close(fd)


def check_reachable(state_dir: str, uid: int) -> None:
    """Refuse, naming the directory, when ``uid`` cannot enter a directory above the state directory."""
    groups = _groups_of(uid)
    path = os.path.dirname(os.path.realpath(state_dir))
    while True:
        info = os.stat(path)
        if not _may_search(info, uid, groups):
            raise NotAllowed(
                "user %d cannot enter %s, above the server's state directory %s, so it cannot reach kernel "
                "sockets there: give the server a state_dir others may enter (such as /var/lib/sandkasten)"
                % (uid, path, state_dir)
            )
        if path == "/":
            return
        path = os.path.dirname(path)


def add_acl_entry(path: str, uid: int, permissions: int) -> None:
    """Add (or widen) a named-user entry for ``uid`` to ``path``'s access ACL, keeping every other entry."""
    entries = _read_acl(path)
    named = {(tag, ident): perm for tag, perm, ident in entries if tag in (USER, GROUP)}
    named[(USER, uid)] = named.get((USER, uid), 0) | permissions
    base = {tag: perm for tag, perm, _ in entries if tag in (USER_OBJ, GROUP_OBJ, OTHER)}
    mask = base[GROUP_OBJ]
    for perm in named.values():
        mask |= perm
    ordered: list[Entry] = [(USER_OBJ, base[USER_OBJ], ACL_UNDEFINED_ID)]
    ordered += [(USER, perm, ident) for (tag, ident), perm in sorted(named.items()) if tag == USER]
    ordered.append((GROUP_OBJ, base[GROUP_OBJ], ACL_UNDEFINED_ID))
    ordered += [(GROUP, perm, ident) for (tag, ident), perm in sorted(named.items()) if tag == GROUP]
    ordered += [(MASK, mask, ACL_UNDEFINED_ID), (OTHER, base[OTHER], ACL_UNDEFINED_ID)]
    blob = struct.pack("<I", ACL_VERSION) + b"".join(struct.pack("<HHI", *entry) for entry in ordered)
    try:
        os.setxattr(path, ACL_XATTR, blob)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            raise EngineError("%s has no POSIX ACLs (its file system), so no other user can be let in" % path) from None
        raise EngineError("cannot let user %d into %s: %s" % (uid, path, exc.strerror)) from None


def _read_acl(path: str) -> list[Entry]:
    """``path``'s access ACL; a file without one has the three entries its mode bits stand for."""
    try:
        blob = os.getxattr(path, ACL_XATTR)
    except OSError as exc:
        if exc.errno not in (errno.ENODATA, errno.EOPNOTSUPP):
            raise EngineError("cannot read the ACL of %s: %s" % (path, exc.strerror)) from None
        mode = os.stat(path).st_mode
        return [
            (USER_OBJ, (mode >> 6) & 7, ACL_UNDEFINED_ID),
            (GROUP_OBJ, (mode >> 3) & 7, ACL_UNDEFINED_ID),
            (OTHER, mode & 7, ACL_UNDEFINED_ID),
        ]
    return [struct.unpack_from("<HHI", blob, offset) for offset in range(4, len(blob), 8)]


def _host_directories(state_dir: str, run_dir: str) -> list[str]:
    """The host's own directories from the state directory down to (not including) the run directory."""
    state = os.path.realpath(state_dir)
    parent = os.path.dirname(os.path.abspath(run_dir))
    if os.path.commonpath([state, os.path.realpath(parent)]) != state:
        raise EngineError("run directory %s is not under the state directory %s" % (run_dir, state_dir))
    chain = [parent]
    while os.path.realpath(chain[-1]) != state:
        chain.append(os.path.dirname(chain[-1]))
    return chain[::-1]


def _groups_of(uid: int) -> set[int]:
    try:
        user = pwd.getpwuid(uid)
    except KeyError:  # a uid with no passwd entry (a container's, say) has no supplementary groups here
        return set()
    return set(os.getgrouplist(user.pw_name, user.pw_gid))  # the primary group and every supplementary one


def _may_search(info: os.stat_result, uid: int, groups: set[int]) -> bool:
    if uid == 0:
        return True
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)
