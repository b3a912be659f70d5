"""E2B's SDK (``e2b``), unmodified, on a sandbox's files: ``sandbox.files`` and envd's ``/files``.

Each test shares one sandbox among its steps and kills it at the end.
E2B's ``/home/user`` is the sandbox's ``/workspace``; other paths are refused
with a message saying so.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import os
import urllib.error
import urllib.request
from typing import Any

import pytest
from e2b import (
    AsyncSandbox,
    EntryInfo,
    FileNotFoundException,
    FilesystemEventType,
    FileType,
    InvalidArgumentException,
    Sandbox,
    TimeoutException,
)
from e2b.sandbox.filesystem.watch_handle import FilesystemEvent

pytestmark = pytest.mark.docker

BIG = os.urandom(5 << 20)


def test_write_read_list_and_change_files(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        files = sbx.files
        written = files.write("/home/user/a/b.txt", "content")
        assert (written.name, written.type, written.path) == ("b.txt", FileType.FILE, "/home/user/a/b.txt")
        assert files.read("/home/user/a/b.txt") == "content"
        assert files.read("a/b.txt", format="bytes") == bytearray(b"content")  # relative: under /home/user
        assert sbx.commands.run("cat /workspace/a/b.txt").stdout == "content"  # E2B's home is the workspace

        files.write("big.bin", BIG)
        assert bytes(files.read("big.bin", format="bytes")) == BIG
        assert b"".join(files.read("big.bin", format="stream")) == BIG

        infos = files.write_files(
            [{"path": "m/one.txt", "data": "1"}, {"path": "/home/user/m/two.bin", "data": b"\x00\x02"}]
        )
        assert [i.path for i in infos] == ["/home/user/m/one.txt", "/home/user/m/two.bin"]
        assert files.read("m/two.bin", format="bytes") == bytearray(b"\x00\x02")

        top = {e.name: e for e in files.list("/home/user")}
        assert {"a", "big.bin", "m"} <= top.keys()
        assert top["a"].type == FileType.DIR and top["a"].path == "/home/user/a"
        assert top["big.bin"].size == len(BIG) and top["big.bin"].permissions == "-rw-r--r--"
        deep = [e.path for e in files.list("/home/user", depth=2)]
        assert "/home/user/a/b.txt" in deep and "/home/user/m/one.txt" in deep
        assert deep.index("/home/user/a") < deep.index("/home/user/a/b.txt")
        assert "/home/user" not in deep

        assert files.exists("a/b.txt") and not files.exists("a/nothing.txt")
        assert files.make_dir("/home/user/d1/d2") is True
        assert files.make_dir("/home/user/d1/d2") is False
        info = files.get_info("/home/user/d1")
        assert (info.type, info.name, info.permissions, info.owner) == (FileType.DIR, "d1", "drwxr-xr-x", "user")
        assert info.mode & 0o777 == 0o755 and info.modified_time.year >= 2024

        moved = files.rename("/home/user/a/b.txt", "/home/user/new/place/c.txt")  # parents made
        assert (moved.path, moved.type) == ("/home/user/new/place/c.txt", FileType.FILE)
        assert files.read("new/place/c.txt") == "content" and not files.exists("a/b.txt")
        with pytest.raises(FileNotFoundException):
            files.rename("/home/user/a/b.txt", "/home/user/x.txt")

        sbx.commands.run("ln -s /workspace/m /workspace/link")
        link = files.get_info("link")
        assert (link.type, link.symlink_target) == (FileType.SYMLINK, "/home/user/m")
        assert next(e for e in files.list(".") if e.name == "link").symlink_target == "/home/user/m"

        files.remove("/home/user/d1")  # a directory, with what is in it
        files.remove("big.bin")
        assert not files.exists("d1") and not files.exists("big.bin")
        with pytest.raises(FileNotFoundException):
            files.remove("big.bin")


def test_errors_say_what_is_wrong(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        files = sbx.files
        with pytest.raises(FileNotFoundException, match="does not exist"):
            files.read("/home/user/missing.txt")
        with pytest.raises(FileNotFoundException):
            files.get_info("/home/user/missing.txt")
        with pytest.raises(FileNotFoundException, match="/home/user/missing"):  # E2B's path, not the sandbox's
            files.list("/home/user/missing")
        files.make_dir("dir")
        with pytest.raises(InvalidArgumentException, match="is a directory"):
            files.read("/home/user/dir")
        with pytest.raises(InvalidArgumentException, match="is a directory"):
            files.write("/home/user/dir", "x")
        files.write("plain.txt", "x")
        with pytest.raises(InvalidArgumentException, match="not a directory"):
            files.make_dir("plain.txt")
        with pytest.raises(InvalidArgumentException):
            files.list("plain.txt")
        for outside in ("/etc/passwd", "/tmp/x", "/home/user/../../etc/passwd"):
            with pytest.raises(InvalidArgumentException, match="/home/user"):
                files.read(outside)
            with pytest.raises(InvalidArgumentException, match="/home/user"):
                files.get_info(outside)
        with pytest.raises(InvalidArgumentException, match="/home/user"):
            files.write("/etc/evil", "x")
        with pytest.raises(InvalidArgumentException, match="/home/user"):
            files.rename("plain.txt", "/tmp/plain.txt")


def test_uploads_multipart_octet_stream_and_gzip(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        files = sbx.files
        assert files.write("octet.txt", "raw", use_octet_stream=True).path == "/home/user/octet.txt"
        assert files.write("gz.bin", BIG, gzip=True).path == "/home/user/gz.bin"
        assert files.write("stream.bin", io.BytesIO(b"from a file object")).path == "/home/user/stream.bin"
        assert files.read("octet.txt") == "raw"
        assert bytes(files.read("gz.bin", format="bytes", gzip=True)) == BIG
        assert files.read("stream.bin") == "from a file object"

        # envd's /files as a client without the SDK sends it: parts named "file", the filename the path.
        boundary = "b0undary"
        parts = [("p/one.txt", b"1"), ("/home/user/p/two.txt", b"22")]
        body = (
            b"".join(
                b'--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\n\r\n%s\r\n'
                % (boundary.encode(), name.encode(), data)
                for name, data in parts
            )
            + b"--%s--\r\n" % boundary.encode()
        )
        status, answer = _envd(sbx, "files", body, "multipart/form-data; boundary=" + boundary)
        assert status == 200
        assert answer == [
            {"name": "one.txt", "type": "file", "path": "/home/user/p/one.txt"},
            {"name": "two.txt", "type": "file", "path": "/home/user/p/two.txt"},
        ]
        status, answer = _envd(
            sbx, "files?path=%2Fhome%2Fuser%2Fz.gz", gzip.compress(b"zz"), "application/octet-stream", gzip=True
        )
        assert status == 200 and files.read("z.gz") == "zz"
        status, answer = _envd(sbx, "files", b"x", "application/octet-stream")
        assert status == 400 and "path" in answer["message"]
        status, answer = _envd(sbx, "files?path=x", b"not gzip", "application/octet-stream", gzip=True)
        assert status == 400 and "decompressing" in answer["message"]
        twice = body.replace(b"/home/user/p/two.txt", b"p/one.txt")
        status, answer = _envd(sbx, "files", twice, "multipart/form-data; boundary=" + boundary)
        assert status == 400 and "same path" in answer["message"]


def _envd(sbx: Sandbox, path: str, body: bytes, content_type: str, gzip: bool = False) -> tuple[int, Any]:
    """POST to the sandbox's envd as the SDK would address it; the status and the JSON answer."""
    headers = {
        "Content-Type": content_type,
        "E2b-Sandbox-Id": sbx.sandbox_id,
        "E2b-Sandbox-Port": "49983",
        "X-Access-Token": sbx._envd_access_token or "",
    }
    if gzip:
        headers["Content-Encoding"] = "gzip"
    url = os.environ["E2B_SANDBOX_URL"] + "/" + path
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_sync_watch_reports_changes(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        sbx.files.make_dir("w")
        sbx.files.write("w/old.txt", "old")
        handle = sbx.files.watch_dir("/home/user/w")
        assert handle.get_new_events() == []
        sbx.files.write("w/new.txt", "new")
        sbx.files.remove("w/old.txt")
        events = {(e.name, e.type) for e in handle.get_new_events()}
        assert ("new.txt", FilesystemEventType.CREATE) in events and ("new.txt", FilesystemEventType.WRITE) in events
        assert ("old.txt", FilesystemEventType.REMOVE) in events
        sbx.files.rename("w/new.txt", "w/renamed.txt")
        events = {(e.name, e.type) for e in handle.get_new_events()}
        assert events == {("new.txt", FilesystemEventType.RENAME), ("renamed.txt", FilesystemEventType.CREATE)}
        handle.stop()
        with pytest.raises(FileNotFoundException):
            sbx.files.watch_dir("/home/user/not-there")


async def test_async_files_and_watch(e2b_env: dict[str, str]) -> None:
    sbx = await AsyncSandbox.create()
    try:
        await sbx.files.write("/home/user/async.txt", "hello")
        assert await sbx.files.read("/home/user/async.txt") == "hello"
        assert [e.name for e in await sbx.files.list("/home/user")] == ["async.txt"]
        info: EntryInfo = await sbx.files.get_info("async.txt")
        assert info.size == 5
        assert await sbx.files.make_dir("sub") is True and await sbx.files.make_dir("sub") is False

        seen: list[FilesystemEvent] = []
        created = asyncio.Event()

        def on_event(event: FilesystemEvent) -> None:
            seen.append(event)
            if event.name == "sub/deep.txt" and event.type == FilesystemEventType.CREATE:
                created.set()

        handle = await sbx.files.watch_dir("/home/user", on_event, recursive=True, timeout=30)
        await sbx.files.write("/home/user/sub/deep.txt", "x")
        await asyncio.wait_for(created.wait(), 10)
        await handle.stop()
        with pytest.raises(FileNotFoundException):
            await sbx.files.read("/home/user/nothing")

        ended: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        await sbx.files.watch_dir("sub", lambda event: None, on_exit=ended.set_result, timeout=1)
        assert isinstance(await asyncio.wait_for(ended, 10), TimeoutException)  # the watch's deadline
        with pytest.raises(InvalidArgumentException):
            await sbx.files.watch_dir("async.txt", lambda event: None)  # not a directory
    finally:
        await sbx.kill()
