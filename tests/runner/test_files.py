"""File operations confined to /workspace, on the host and inside every image."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from typing import Any

import pytest

from sandkasten_kernel.engine.errors import RunnerRequestError
from sandkasten_runner.protocol import encode_head
from tests.conftest import Target


def unique(name: str) -> str:
    return "%s-%s" % (name, uuid.uuid4().hex[:8])


async def expect_error(coro: object, code: str) -> RunnerRequestError:
    with pytest.raises(RunnerRequestError) as error:
        await coro  # type: ignore[misc]
    assert error.value.code == code, error.value
    assert error.value.message
    return error.value


async def test_write_read_round_trip_with_parents_and_mode(runner: Target) -> None:
    folder = unique("deep")
    data = bytes(range(256)) * 1000
    async with await runner.client() as client:
        written = await client.write("%s/a/b/blob.bin" % folder, data, mode=0o600)
        assert written == {"path": "%s/a/b/blob.bin" % folder, "size": len(data)}
        assert await client.read("%s/a/b/blob.bin" % folder) == data
        assert await client.read("%s/a/b/blob.bin" % folder, offset=10, length=5) == data[10:15]
        info = await client.stat("%s/a/b/blob.bin" % folder)
        assert info["type"] == "file" and info["size"] == len(data) and info["mode"] == 0o600
        # The shell sees the same file.
        result = await client.exec("stat -c '%%a %%s' %s/a/b/blob.bin" % folder, cwd=runner.workspace)
        assert result.output == "600 %d\n" % len(data)


async def test_overwrite_append_and_absolute_workspace_paths(runner: Target) -> None:
    name = unique("log")
    async with await runner.client() as client:
        await client.write(name, b"one\n")
        await client.write(name, b"two\n", append=True)
        assert await client.read("%s/%s" % (runner.workspace, name)) == b"one\ntwo\n"
        await client.write(name, b"fresh")
        assert await client.read(name) == b"fresh"


async def test_list_stat_mkdir_remove(runner: Target) -> None:
    folder = unique("tree")
    async with await runner.client() as client:
        await client.mkdir("%s/empty" % folder)
        await client.write("%s/file.txt" % folder, b"x")
        await client.exec("ln -s file.txt %s/link" % folder, cwd=runner.workspace)
        entries = {e["name"]: e["type"] for e in await client.list(folder)}
        assert entries == {"empty": "directory", "file.txt": "file", "link": "symlink"}
        link = await client.stat("%s/link" % folder)
        assert link["type"] == "symlink" and link["target"] == "file.txt"
        await expect_error(client.remove(folder), "directory_not_empty")
        await client.remove("%s/link" % folder)
        assert await client.read("%s/file.txt" % folder) == b"x"  # the link went, not its target
        await client.remove(folder, recursive=True)
        await expect_error(client.stat(folder), "not_found")


async def test_paths_that_escape_the_workspace_are_refused(runner: Target) -> None:
    async with await runner.client() as client:
        for path in [
            "../etc/passwd",
            "a/../../x",
            "/etc/passwd",
            "/tmp",
            "/workspace-other/x" if runner.kind != "host" else "/",
        ]:
            await expect_error(client.read(path), "path_outside_workspace")
            await expect_error(client.write(path, b"x"), "path_outside_workspace")
        await expect_error(client.list(".."), "path_outside_workspace")
        await expect_error(client.remove("/etc/hostname"), "path_outside_workspace")
        await expect_error(client.mkdir("../made"), "path_outside_workspace")


async def test_symlink_escapes_are_refused(runner: Target) -> None:
    name = unique("escape")
    async with await runner.client() as client:
        await client.exec("ln -s /etc %s-dir; ln -s /etc/passwd %s-file" % (name, name), cwd=runner.workspace)
        await expect_error(client.read("%s-file" % name), "path_outside_workspace")
        await expect_error(client.read("%s-dir/hostname" % name), "path_outside_workspace")
        await expect_error(client.write("%s-dir/planted" % name, b"x"), "path_outside_workspace")
        await expect_error(client.list("%s-dir" % name), "path_outside_workspace")
        await expect_error(client.mkdir("%s-dir/sub" % name), "path_outside_workspace")
        # Writing over the link replaces the link itself; the target is untouched.
        await client.write("%s-file" % name, b"mine")
        assert (await client.stat("%s-file" % name))["type"] == "file"
        assert (await client.exec("head -c 5 /etc/passwd")).output == "root:"


async def test_odd_paths(runner: Target) -> None:
    async with await runner.client() as client:
        await expect_error(client.read("bad\x00name"), "invalid_path")
        await expect_error(client.write("x" * 300, b"x"), "invalid_path")
        await expect_error(client.read("no-such-file"), "not_found")
        await expect_error(client.read("."), "is_a_directory")
        await expect_error(client.write(".", b"x"), "is_a_directory")
        await expect_error(client.remove("."), "permission_denied")
        unicode_name = unique("naïve ☃ ファイル")
        await client.write(unicode_name, "ü".encode())
        assert await client.read(unicode_name) == "ü".encode()
        assert any(e["name"] == unicode_name for e in await client.list("."))


async def test_a_payload_in_pieces_is_written_and_read_as_one(runner: Target) -> None:
    name = unique("pieces")
    pieces = [os.urandom(n) for n in (1, 70000, 3 << 20, 0, 5)]
    whole = b"".join(pieces)
    async with await runner.client() as client:
        assert (await client.write(name, pieces))["size"] == len(whole)
        assert (await client.write(name, pieces, append=True))["size"] == 2 * len(whole)
        received: list[bytes] = []
        assert await client.read_to(name, received.append, offset=1, length=len(whole)) == len(whole)
        expected = (whole + whole)[1 : len(whole) + 1]
        assert b"".join(received) == expected == await client.read(name, offset=1, length=len(whole))
        assert await client.read_to(name, received.append, offset=10 * len(whole)) == 0


async def test_a_refused_write_still_takes_its_payload(runner: Target) -> None:
    async with await runner.client() as client:
        await expect_error(client.write("../outside", [os.urandom(3 << 20)] * 2), "path_outside_workspace")
        await expect_error(client.write(unique("dir") + "/", os.urandom(1 << 20), mode=0o77777), "bad_request")
        assert (await client.request("hello", {"version": 1}))[0]["protocol"] == 1  # still in step


async def wait_for(check: Any, what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out waiting until %s" % what)


@pytest.mark.parametrize("append", [False, True])
async def test_a_write_cut_off_midway_changes_nothing(runner: Target, append: bool) -> None:
    """The runner writes a payload to the file as it arrives: a client that leaves part-way
    leaves the file as it was (the new file is never renamed in, the append is cut back)."""
    folder = unique("cut")
    name = folder + "/file"
    async with await runner.client() as client:
        await client.write(name, b"old")

        async def landed() -> bool:  # part of the payload is on disk (in the file, or in the temporary file)
            return any(e["size"] > 3 for e in await client.list(folder))

        async def undone() -> bool:
            return [(e["name"], e["size"]) for e in await client.list(folder)] == [("file", 3)]

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(runner.socket)
            sock.sendall(encode_head({"id": 1, "op": "write", "args": {"path": name, "append": append}}, 4 << 20))
            sock.sendall(b"x" * (1 << 20))
            await wait_for(landed, "the first part of the payload is written")
        await wait_for(undone, "the cut-off write is taken back")
        assert await client.read(name) == b"old"


async def test_a_read_larger_than_one_frame_is_refused_with_the_size(runner: Target) -> None:
    name = unique("big")
    async with await runner.client() as client:
        await client.exec("head -c 70000000 /dev/zero > %s" % name, cwd=runner.workspace)
        error = await expect_error(client.read(name), "file_too_large")
        assert error.details["size"] == 70_000_000
        part = await client.read(name, offset=69_999_990, length=100)
        assert part == b"\0" * 10
        await client.remove(name)


async def test_bad_file_arguments(runner: Target) -> None:
    async with await runner.client() as client:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("read", {}),
            ("read", {"path": 5}),
            ("read", {"path": "x", "offset": -1}),
            ("write", {"path": "x", "mode": 99999}),
            ("write", {"path": "x", "append": "yes"}),
            ("remove", {"path": ["x"]}),
        ]
        for op, args in cases:
            with pytest.raises(RunnerRequestError) as error:
                await client.request(op, args)
            assert error.value.code == "bad_request", (op, args)


def test_host_files_land_in_the_workspace_directory(host_runner: Target) -> None:
    import asyncio

    async def write() -> None:
        async with await host_runner.client() as client:
            await client.write("seen/on/host.txt", b"hello")

    asyncio.run(write())
    assert host_runner.host_workspace is not None
    with open(os.path.join(host_runner.host_workspace, "seen/on/host.txt"), "rb") as f:
        assert f.read() == b"hello"
