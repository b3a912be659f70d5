"""``restore``: a snapshot's archive unpacked by the runner, and hostile archives refused member by member.

Run in the hardened containers only: a runner on the host would unpack as the
test's user, and a hostile archive's target is the host's files.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from sandkasten_kernel.engine.errors import RunnerRequestError
from tests.conftest import Target

Member = Callable[[tarfile.TarFile], None]


def archive(*members: Member) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for add in members:
            add(tar)
    return buffer.getvalue()


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), mode
        tar.addfile(info, io.BytesIO(data))

    return add


def special(name: str, kind: bytes, linkname: str = "", mode: int = 0o755) -> Member:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = kind, linkname, mode
        tar.addfile(info)

    return add


async def in_pieces(data: bytes, size: int = 7000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def target(runner: Target) -> Target:
    if runner.kind == "host":
        pytest.skip("hostile archives are unpacked inside sandboxes only")
    return runner


async def test_an_archive_in_pieces_is_unpacked_with_links_and_modes(target: Target) -> None:
    top = "restored-%s" % uuid.uuid4().hex[:8]
    data = archive(
        special(top, tarfile.DIRTYPE),
        file(top + "/a.txt", b"alpha", 0o600),
        special(top + "/ro", tarfile.DIRTYPE),
        file(top + "/ro/inner", b"in"),
        special(top + "/link", tarfile.SYMTYPE, "/etc/shadow"),
        special(top + "/hard", tarfile.LNKTYPE, top + "/a.txt", 0o600),  # GNU tar gives a link its file's mode
        special(top + "/fifo", tarfile.FIFOTYPE),
        special(top + "/disk", tarfile.BLKTYPE),
    )
    async with await target.client() as client:
        counts = await client.restore("workspace", in_pieces(data))
        assert counts == {"files": 3, "dirs": 2, "links": 2, "skipped": 1, "bytes": len(data)}
        out = await client.exec(
            "cd %s && cat a.txt ro/inner; echo; stat -c %%a a.txt; readlink link; stat -c %%h hard; "
            "test -p fifo && echo fifo; test -e disk || echo no-device" % top,
            cwd=target.workspace,
        )
        assert out.output == "alphain\n600\n/etc/shadow\n2\nfifo\nno-device\n"
        assert (await client.exec("echo still-in-step")).output == "still-in-step\n"


@pytest.mark.parametrize(
    ("members", "code"),
    [
        ([file("/etc/evil")], "invalid_path"),
        ([file("../../evil")], "invalid_path"),
        ([special("up", tarfile.SYMTYPE, "/etc"), file("up/evil")], "path_outside_workspace"),
        ([special("up", tarfile.SYMTYPE, ".."), file("up/evil")], "path_outside_workspace"),
        ([special("hl", tarfile.LNKTYPE, "../../etc/passwd")], "invalid_path"),
    ],
    ids=["absolute", "dotdot", "through-an-absolute-symlink", "through-a-relative-symlink", "hard-link-out"],
)
async def test_a_member_that_leaves_the_target_is_refused(target: Target, members: list[Member], code: str) -> None:
    data = archive(*members)
    async with await target.client() as client:
        with pytest.raises(RunnerRequestError) as error:
            await client.restore("workspace", in_pieces(data, 100))
        assert error.value.code == code, error.value
        # The rest of the archive was taken: the connection answers the next request in step.
        assert (await client.exec("ls /etc/evil ../evil 2>&1 | grep -c 'No such'; echo ok")).output == "2\nok\n"


async def test_not_an_archive_and_a_bad_target(target: Target) -> None:
    async with await target.client() as client:
        with pytest.raises(RunnerRequestError) as error:
            await client.restore("workspace", in_pieces(b"\x01" * 5000))
        assert error.value.code == "bad_request"
        with pytest.raises(RunnerRequestError) as error:
            await client.restore("etc", in_pieces(archive(file("x"))))
        assert error.value.code == "bad_request" and "target" in error.value.message
        assert (await client.exec("echo ok")).output == "ok\n"
