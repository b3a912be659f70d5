"""Files and tar archives through the API, including the ways a path can try to leave /workspace."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile

import pytest

from sandkasten_server.handlers.files import Pieces
from tests.server.conftest import Api

pytestmark = pytest.mark.docker


def tar_of(files: dict[str, bytes], extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in extra or []:
            archive.addfile(info)
    return buffer.getvalue()


def test_write_read_list_remove(api: Api) -> None:
    session_id = api.session()
    files = "sessions/%s/files/" % session_id
    payload = os.urandom(3 << 20)  # binary, and more than one read chunk would be for small chunks
    written = api.put(files + "deep/er/data.bin", payload, params={"mode": "600"})
    assert written.status == 201 and written.json == {"path": "deep/er/data.bin", "size": len(payload)}
    read = api.get(files + "deep/er/data.bin")
    assert read.status == 200 and read.body == payload
    assert read.headers["Content-Type"] == "application/octet-stream"

    listing = api.get(files + "deep/er").json
    assert listing["path"] == "deep/er"
    assert [(e["name"], e["type"], e["size"], e["mode"]) for e in listing["entries"]] == [
        ("data.bin", "file", len(payload), 0o600)
    ]
    assert [e["name"] for e in api.get(files.rstrip("/")).json["entries"]] == ["deep"]
    assert api.exec(session_id, "sha256sum < /workspace/deep/er/data.bin")["output"].split()[0] == (
        hashlib.sha256(payload).hexdigest()
    )

    assert api.put(files + "empty.txt", b"").json["size"] == 0
    busy = api.delete(files + "deep")
    assert busy.status == 409 and busy.json["error"] == "directory_not_empty"
    assert api.delete(files + "deep", params={"recursive": "true"}).status == 204
    missing = api.get(files + "deep/er/data.bin")
    assert missing.status == 404 and missing.json["error"] == "not_found"


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "a/../../../etc/passwd", "x\0y", "n" * 5000],
)
def test_paths_stay_inside_the_workspace(api: Api, path: str) -> None:
    session_id = api.session()
    for method in ("GET", "PUT", "DELETE"):
        reply = api.call(method, "sessions/%s/files/%s" % (session_id, path), b"x" if method == "PUT" else None)
        assert reply.status in (400, 404), (method, path, reply.status, reply.body)
        assert reply.json["error"] in ("path_outside_workspace", "invalid_path", "not_found", "bad_request")
    assert api.exec(session_id, "cat /etc/passwd | wc -l")["exit_code"] == 0  # the host file is not what it read


def test_symlinks_out_of_the_workspace_are_refused(api: Api) -> None:
    session_id = api.session()
    api.exec(session_id, "ln -s /etc /workspace/etc-link && ln -s / /workspace/root")
    for path in ("etc-link/passwd", "root/etc/hostname"):
        reply = api.get("sessions/%s/files/%s" % (session_id, path))
        assert reply.status == 400 and reply.json["error"] == "path_outside_workspace", reply.body
    assert api.put("sessions/%s/files/root/tmp/x" % session_id, b"x").status == 400


def test_tar_upload_and_download(api: Api) -> None:
    session_id = api.session()
    files = {"project/main.py": b"print(1)\n", "project/data/big.bin": os.urandom(1 << 20), "project/empty": b""}
    unpacked = api.put("sessions/%s/archive/in" % session_id, tar_of(files))
    assert unpacked.status == 200, unpacked.body
    assert unpacked.json == {"path": "in", "files": 3, "directories": 0, "bytes": (1 << 20) + 9, "skipped": []}
    assert api.exec(session_id, "cd /workspace/in/project && python3 main.py")["output"] == "1\n"

    api.exec(session_id, "ln -s main.py /workspace/in/project/link")
    download = api.get("sessions/%s/archive/in" % session_id)
    assert download.status == 200 and download.headers["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(download.body)) as archive:
        members = {m.name: m for m in archive.getmembers()}
        assert set(members) == {"project", "project/data", *files}  # the symlink is left out
        for name, data in files.items():
            extracted = archive.extractfile(members[name])
            assert extracted is not None and extracted.read() == data

    whole = api.get("sessions/%s/archive" % session_id)
    with tarfile.open(fileobj=io.BytesIO(whole.body)) as archive:
        assert "in/project/main.py" in archive.getnames()


def test_bad_archives(api: Api) -> None:
    session_id = api.session()
    url = "sessions/%s/archive/in" % session_id
    assert api.put(url, b"not a tar at all").json["error"] == "bad_archive"
    for name in ("../escape.txt", "/abs.txt", "a/../../escape.txt"):
        reply = api.put(url, tar_of({"fine.txt": b"ok", name: b"x"}))
        assert reply.status == 400 and name in reply.json["message"]
    assert api.get("sessions/%s/files/in/fine.txt" % session_id).status == 404  # nothing of it was written

    link = tarfile.TarInfo("evil-link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    reply = api.put(url, tar_of({"ok.txt": b"ok"}, [link]))
    assert reply.json["skipped"] == ["evil-link"] and reply.json["files"] == 1
    not_dir = api.get("sessions/%s/archive/in/ok.txt" % session_id)
    assert not_dir.status == 409 and not_dir.json["error"] == "not_a_directory"


def test_a_large_upload_streams_into_the_sandbox(api: Api) -> None:
    session_id = api.session()
    payload = os.urandom(7 << 20) + b"end"  # under quota.max_body_mb (8), and more than one write to the runner
    written = api.put("sessions/%s/files/big/upload.bin" % session_id, payload)
    assert written.status == 201 and written.json["size"] == len(payload)
    assert api.get("sessions/%s/files/big/upload.bin" % session_id).body == payload
    rewritten = api.put("sessions/%s/files/big/upload.bin" % session_id, b"short")  # replaces, not appends
    assert rewritten.json["size"] == 5
    refused = api.put("sessions/nope/files/x", b"data")
    assert refused.status == 404 and refused.json["error"] == "not_found"
    bad_mode = api.put("sessions/%s/files/x" % session_id, b"data", params={"mode": "999"})
    assert bad_mode.status == 400 and "mode" in bad_mode.json["message"]


def test_a_file_larger_than_one_read_comes_back_whole_with_its_length(api: Api) -> None:
    session_id = api.session()
    files = "sessions/%s/files/" % session_id
    script = "head -c 20000005 /dev/urandom > big.bin; : > empty; ln -s big.bin link; sha256sum big.bin"
    made = api.exec(session_id, script)
    digest = made["output"].split()[0]
    read = api.get(files + "big.bin")  # more than two of the parts the server reads at a time
    assert read.status == 200 and hashlib.sha256(read.body).hexdigest() == digest
    assert read.headers["Content-Length"] == "20000005"
    empty = api.get(files + "empty")
    assert empty.status == 200 and empty.body == b"" and empty.headers["Content-Length"] == "0"
    through_link = api.get(files + "link")  # the link's own size is not the file's: sent chunked
    assert through_link.status == 200 and hashlib.sha256(through_link.body).hexdigest() == digest


def test_compressed_archives_unpack_as_they_stream(api: Api) -> None:
    session_id = api.session()
    files = {"a.txt": b"alpha\n", "deep/er/b.bin": os.urandom(3 << 20)}  # more than one write to the runner
    for compression in ("gz", "bz2", "xz"):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:%s" % compression) as archive:  # type: ignore[call-overload]
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        reply = api.put("sessions/%s/archive/%s" % (session_id, compression), buffer.getvalue())
        assert reply.status == 200, reply.body
        assert reply.json["files"] == 2 and reply.json["bytes"] == sum(map(len, files.values()))
        got = api.get("sessions/%s/files/%s/deep/er/b.bin" % (session_id, compression)).body
        assert hashlib.sha256(got).digest() == hashlib.sha256(files["deep/er/b.bin"]).digest()
    truncated = tar_of(files)[: 2 << 20]
    reply = api.put("sessions/%s/archive/cut" % session_id, truncated)
    assert reply.status == 400 and reply.json["error"] == "bad_archive", reply.body
    assert api.get("sessions/%s/files/cut" % session_id).status == 404  # what it had written is gone


def test_a_refused_archive_removes_what_it_wrote_and_keeps_what_was_there(api: Api) -> None:
    session_id = api.session()
    api.exec(session_id, "mkdir -p /workspace/keep/sub && echo old > /workspace/keep/old.txt")
    url = "sessions/%s/archive/keep" % session_id
    refused = api.put(url, tar_of({"new.txt": b"n", "sub/s.txt": b"s", "fresh/f.txt": b"f", "../out": b"x"}))
    assert refused.status == 400 and "../out" in refused.json["message"]
    assert "removed" in refused.json["message"], refused.json
    listing = api.exec(session_id, "cd /workspace/keep && find . | sort")["output"]
    assert listing == ".\n./old.txt\n./sub\n", listing  # the directory it did not make stays, empty

    replaced = api.put(url, tar_of({"old.txt": b"new content", "/abs": b"x"}))
    assert replaced.status == 400 and "1 of the files had replaced existing ones" in replaced.json["message"]
    assert api.get("sessions/%s/files/keep/old.txt" % session_id).status == 404


def test_a_read_keeps_no_more_than_it_asked_the_runner_for() -> None:
    """The runner is the sandbox's: a reply longer than the read asked for is cut, never sent on
    (it would run past the Content-Length the reply already promised)."""
    pieces = Pieces(5)
    for piece in (b"abc", b"defgh", b"ijk"):
        pieces.take(piece)
    assert pieces.kept == [b"abc", b"de"] and pieces.count == 5
