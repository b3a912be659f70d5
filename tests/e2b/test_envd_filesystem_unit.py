"""The pure parts of envd's filesystem and files here: paths, Go's file modes, watch diffs, gunzip."""

from __future__ import annotations

import gzip

import pytest

from sandkasten_server.e2b.base import E2BError
from sandkasten_server.e2b.connect_rpc import RpcError
from sandkasten_server.e2b.envd_files import gunzipped
from sandkasten_server.e2b.envd_filesystem import (
    Watch,
    entry_info,
    go_mode,
    go_mode_string,
    in_e2b_words,
    workspace_path,
)


def test_paths_reach_the_workspace_only() -> None:
    assert workspace_path("/home/user/a/../b") == "/workspace/b"
    assert workspace_path("rel/x") == "/workspace/rel/x"
    assert workspace_path("") == workspace_path("~") == "/workspace"
    assert workspace_path("/workspace/y") == "/workspace/y"
    for outside in ("/etc/passwd", "/home/user/../x", "../x", "/workspace2"):
        with pytest.raises(RpcError, match="/home/user") as caught:
            workspace_path(outside)
        assert caught.value.code == "invalid_argument"
    assert in_e2b_words("/workspace/a: No such file; '/workspace' /workspace2") == (
        "/home/user/a: No such file; '/home/user' /workspace2"
    )


def test_modes_as_go_writes_them() -> None:
    assert go_mode("directory", 0o755) == 2147484141 and go_mode_string(2147484141) == "drwxr-xr-x"
    assert go_mode_string(go_mode("file", 0o644)) == "-rw-r--r--"
    assert go_mode_string(go_mode("symlink", 0o777)) == "Lrwxrwxrwx"
    assert go_mode_string(go_mode("file", 0o4755)) == "urwxr-xr-x"
    assert go_mode_string(go_mode("directory", 0o1777)) == "dtrwxrwxrwx"


def test_entry_info_is_envds() -> None:
    info = entry_info(
        {"name": "x", "type": "symlink", "size": 3, "mode": 0o777, "mtime": 0.5, "target": "../m"}, "/workspace/a/x"
    )
    assert info == {
        "name": "x",
        "type": "FILE_TYPE_SYMLINK",
        "path": "/home/user/a/x",
        "size": "3",
        "mode": (1 << 27) | 0o777,
        "permissions": "Lrwxrwxrwx",
        "owner": "user",
        "group": "user",
        "modifiedTime": "1970-01-01T00:00:00.500000Z",
        "symlinkTarget": "/home/user/m",
    }
    odd = entry_info({"type": "other", "size": "lots", "mode": None}, "/workspace")  # a runner's nonsense
    assert (odd["name"], odd["type"], odd["size"], odd["permissions"]) == (
        "user",
        "FILE_TYPE_UNSPECIFIED",
        "0",
        "?---------",
    )


def test_watch_changes() -> None:
    watch = Watch("/workspace", recursive=True, include_entry=True)
    kept = {"type": "file", "size": 1, "mode": 0o644, "mtime": 1.0}
    before = {"same": kept, "moved": {**kept, "mtime": 2.0}, "gone": kept, "edited": kept, "chmod": kept}
    now = {
        "same": kept,
        "moved-to": {**kept, "mtime": 2.0},
        "edited": {**kept, "size": 2},
        "chmod": {**kept, "mode": 0o600},
        "new": {**kept, "size": 0},
        "d": {"type": "directory", "size": 4096, "mode": 0o755, "mtime": 3.0},
        "d/f": {**kept, "mtime": 4.0},
    }
    events = [(event["name"], event["type"].removeprefix("EVENT_TYPE_")) for event in watch.changes(before, now)]
    assert events == [
        ("moved", "RENAME"),
        ("gone", "REMOVE"),
        ("moved-to", "CREATE"),
        ("new", "CREATE"),
        ("d", "CREATE"),
        ("d/f", "CREATE"),
        ("d/f", "WRITE"),
        ("edited", "WRITE"),
        ("chmod", "CHMOD"),
    ]
    with_entries = watch.changes(before, now)
    assert with_entries[2]["entry"]["path"] == "/home/user/moved-to" and "entry" not in with_entries[0]
    assert watch.changes(now, now) == []


def test_gunzip_is_bounded() -> None:
    assert gunzipped(gzip.compress(b"a" * 10) + gzip.compress(b"b"), 11) == b"a" * 10 + b"b"
    with pytest.raises(E2BError) as caught:
        gunzipped(gzip.compress(b"a" * 12), 11)
    assert caught.value.status == 413
    with pytest.raises(E2BError, match="cut short"):
        gunzipped(gzip.compress(b"abc")[:-5], 100)
