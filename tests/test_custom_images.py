"""Images added with ``sandkasten images add``: from a Dockerfile or from a local image, the runner on top.

Real builds, real sandboxes. The two images every test here shares (``added_images``):
one from a Dockerfile that installs jq from Debian's mirror, the other ``--from`` the
debootstrap minbase, which has no python3 (the runner layer installs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from sandkasten_kernel.engine import ConfigError, Engine, EngineError, attach_catalog, load_settings, open_state_store
from sandkasten_kernel.engine.dockerfile_sources import DockerfileSources, base_images
from sandkasten_kernel.engine.image_catalog import check_name
from sandkasten_kernel.engine.image_leftovers import remove_dangling_descendants
from sandkasten_kernel.engine.store import SCHEMA_VERSION, ImageRow, Store
from sandkasten_kernel.kernelspecs import allowed_images
from sandkasten_server.serve import build_images
from tests.conftest import ADDED_JQ, ADDED_NOPY, BOOTSTRAP, AddedImages, sandkasten_cli, short_tempdir

pytestmark = pytest.mark.docker


def listed(config: Path | str) -> dict[str, dict[str, Any]]:
    shown = sandkasten_cli(config, "images", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    return {row["name"]: row for row in json.loads(shown.stdout)}


def refused(config: Path | str, *args: str) -> str:
    """The one-line error of a command that must fail with exit 1 (never a traceback)."""
    result = sandkasten_cli(config, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("sandkasten: error: "), result.stderr
    return result.stderr


@pytest.fixture
def config(state_dir: str, tmp_path: Path) -> Path:
    path = tmp_path / "sandkasten.yaml"
    path.write_text("state_dir: %s\npool: {enabled: false}\n" % state_dir)
    return path


# -- without a build ----------------------------------------------------------------------------


def test_the_dockerfile_parse_finds_the_images_it_builds_on() -> None:
    text = """\
# escape=\\
ARG DISTRO=debian
ARG TAG
FROM ${DISTRO}:${TAG:-bookworm} AS build
RUN echo \\
    FROM not-an-image
FROM build AS second
COPY --from=build /a /a
COPY --from=busybox:1.36 /bin/busybox /bin/
COPY --from=0 /b /b
FROM --platform=linux/amd64 scratch
FROM ubuntu:24.04
"""
    assert base_images(text) == ["debian:bookworm", "busybox:1.36", "ubuntu:24.04"]
    assert base_images("ARG BASE=sandkasten/layers:base\nFROM $BASE\n") == ["sandkasten/layers:base"]


def test_the_context_hash_follows_docker_ignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (tmp_path / "kept.txt").write_text("a")
    sources = DockerfileSources.of(str(tmp_path / "Dockerfile"), None)
    first = sources.context_digest()
    (tmp_path / "kept.txt").write_text("b")
    changed = sources.context_digest()
    assert changed != first
    (tmp_path / ".dockerignore").write_text("# not sent\nignored/\n")
    ignoring = sources.context_digest()
    (tmp_path / "ignored").mkdir()
    (tmp_path / "ignored" / "big.bin").write_bytes(b"x" * 1000)
    assert sources.context_digest() == ignoring != changed


def test_bad_names_and_sources_are_refused_before_anything_is_recorded(config: Path, docker_client: Any) -> None:
    dockerfile = config.parent / "Dockerfile"
    dockerfile.write_text("FROM sandkasten/layers:base\n")
    for name in ("Upper", "a" * 64):
        assert "image names are 1-63 lowercase letters" in refused(config, "images", "add", name, "--from", "x")
    for name in (".dot", "_under", "a/b", "a:b", ""):
        with pytest.raises(EngineError, match="image names are 1-63 lowercase letters"):
            check_name(name)
    check_name("a" * 63)
    check_name("py3.12_slim-x")
    assert "'python' is a built-in image" in refused(config, "images", "add", "python", "--from", BOOTSTRAP)
    unknown = refused(config, "images", "add", "sk-test-x", "--from", "sk-test/no-such-image:1")
    assert "sk-test/no-such-image:1 is not on this machine" in unknown and "docker load" in unknown
    assert "docker import" in unknown
    assert "not an image reference" in refused(config, "images", "add", "sk-test-x", "--from", "Not A Ref")
    assert "no Dockerfile at" in refused(config, "images", "add", "sk-test-x", "--dockerfile", str(config.parent))
    context = refused(config, "images", "add", "sk-test-x", "--from", BOOTSTRAP, "--context", str(config.parent))
    assert "a build context goes with a Dockerfile" in context
    assert "is not a directory" in refused(
        config, "images", "add", "sk-test-x", "--dockerfile", str(dockerfile), "--context", str(dockerfile)
    )
    itself = refused(config, "images", "add", "sk-test-x", "--from", "sandkasten/runtime:sk-test-x")
    assert "is the image being added" in itself
    neither = sandkasten_cli(config, "images", "add", "sk-test-x")
    assert neither.returncode == 2 and "one of the arguments --dockerfile --from is required" in neither.stderr
    assert set(listed(config)) == {"base", "python", "node"}  # nothing was recorded
    assert "no image 'sk-test-x' was added" in refused(config, "images", "remove", "sk-test-x")
    assert "'node' is a built-in image" in refused(config, "images", "remove", "node")


def test_the_store_gains_the_images_table_from_version_4(tmp_path: Path) -> None:
    path = tmp_path / "sandkasten.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE sessions (id TEXT PRIMARY KEY); PRAGMA user_version=4;")
    old.close()
    store = Store(str(path))
    assert store.list_images() == []
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_store_open_twice_in_one_process_keeps_its_locks(tmp_path: Path) -> None:
    """`sandkasten serve` opens the store for the catalog and again in its engine: opening it again must not
    drop the first connection's locks, or another process closing its own takes itself for the last one and
    deletes the WAL under the open connections ("disk I/O error")."""
    path = str(tmp_path / "sandkasten.db")
    first = Store(path)
    second = Store(path)
    script = "from sandkasten_kernel.engine.store import Store; s = Store(%r); s.add_event(None, 'x'); s.close()" % path
    for _ in range(2):
        Store(path).close()  # opened and closed again in this process, meanwhile
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert os.path.exists(path + "-wal")
        first.add_event(None, "y")
        assert second.list_images() == []
    first.close()
    second.close()


# -- the shared images -----------------------------------------------------------------------------


def test_adding_prints_a_line_per_step_and_says_what_it_made(added_images: AddedImages) -> None:
    out = added_images.add_output
    assert "added %s as sandkasten/runtime:%s, with a Jupyter kernel" % (ADDED_JQ, ADDED_JQ) in out
    assert "added %s as sandkasten/runtime:%s, without a Jupyter kernel" % (ADDED_NOPY, ADDED_NOPY) in out
    assert re.search(r"^\[%s\] Step 2/\d+ : RUN apt-get update" % ADDED_JQ, out, re.MULTILINE), out
    assert "Removing intermediate container" not in out and " ---> " not in out  # Docker's chatter stays out
    rows = listed(added_images.config)
    assert [name for name in rows] == ["base", "python", "node", ADDED_JQ, ADDED_NOPY]
    jq, nopy = rows[ADDED_JQ], rows[ADDED_NOPY]
    assert (jq["kind"], jq["parent"], jq["state"], jq["kernel"], jq["allowed"]) == (
        "dockerfile",
        "sandkasten/layers:base",
        "current",
        True,
        True,
    )
    assert (nopy["kind"], nopy["parent"], nopy["state"], nopy["kernel"]) == ("from", BOOTSTRAP, "current", False)
    assert jq["size_bytes"] > 100e6 and nopy["size_bytes"] > 100e6 and jq["added_by"]
    table = sandkasten_cli(added_images.config, "images", "list").stdout
    assert table.splitlines()[0].split() == ["NAME", "KIND", "PARENT", "SIZE", "STATE", "KERNEL", "ALLOWED", "IN_USE"]


def test_a_name_is_added_once(added_images: AddedImages) -> None:
    again = refused(added_images.config, "images", "add", ADDED_JQ, "--from", BOOTSTRAP)
    assert "an image named '%s' was added already" % ADDED_JQ in again and "images build" in again


async def test_a_tool_from_debians_mirror_runs_in_a_session(added_images: AddedImages, docker_client: Any) -> None:
    engine = Engine(load_settings(str(added_images.config)))
    await engine.start(pool=False, reaper=False)
    try:
        record = await engine.create_session(image=ADDED_JQ)
        assert record.image == "sandkasten/runtime:%s" % ADDED_JQ
        result = await engine.exec(record.id, "echo '{\"a\": [1, 2]}' | jq -M -c .a; id -u; touch /data/x && echo ok")
        assert result.output.splitlines() == ["[1,2]", "1000", "ok"]
        # The Dockerfile's VOLUME is a tmpfs of the sandbox, not an anonymous volume on the host's disk.
        mounts = docker_client.containers.get(record.container_id).attrs["Mounts"]
        assert [m["Type"] for m in mounts] == ["bind"], mounts
        assert "tmpfs /data tmpfs" in (await engine.exec(record.id, "grep ' /data ' /proc/mounts")).output
        kernel = await engine.start_kernel(record.id)
        assert kernel["transport"] == "ipc"
        # Its full reference is the same image, and the same name to allowed_images.
        other = await engine.create_session(image="sandkasten/runtime:%s" % ADDED_JQ)
        assert other.image == record.image
    finally:
        for session in engine.list_sessions():
            await engine.destroy_session(session.id, wait=True)
        await engine.close()


async def test_an_image_without_python3_gets_it(added_images: AddedImages, docker_client: Any) -> None:
    bare = docker_client.containers.run(BOOTSTRAP, ["sh", "-c", "command -v python3 || echo none"], remove=True)
    assert bare.strip() == b"none"  # what the runner layer started from
    engine = Engine(load_settings(str(added_images.config)))
    await engine.start(pool=False, reaper=False)
    try:
        record = await engine.create_session(image=ADDED_NOPY)
        result = await engine.exec(record.id, "python3 -V; . /etc/os-release; echo $ID; id -un; touch ~/x /tmp/y")
        assert result.exit_code == 0 and result.output.splitlines()[1:] == ["debian", "sandbox"]
        assert result.output.startswith("Python 3.")
        with pytest.raises(EngineError, match="image %s has no Jupyter kernel" % ADDED_NOPY):
            await engine.start_kernel(record.id)
    finally:
        for session in engine.list_sessions():
            await engine.destroy_session(session.id, wait=True)
        await engine.close()


async def test_added_images_are_named_like_built_in_ones_but_allowed_only_when_listed(
    added_images: AddedImages, state_dir: str, tmp_path: Path
) -> None:
    config = tmp_path / "sandkasten.yaml"
    config.write_text(
        "state_dir: %s\npool: {images: {%s: 1, %s: 1}, with_kernel: true}\n"
        "security: {allowed_images: [python, 'sandkasten/runtime:%s', %s]}\n"
        % (state_dir, ADDED_JQ, ADDED_NOPY, ADDED_JQ, ADDED_NOPY)
    )
    settings = load_settings(str(config))
    with pytest.raises(ConfigError, match="not allowed"):  # before the images are added here
        settings.pool_sizes()
    added_images.adopt(config)  # the same sources: the builds are no-ops
    engine = Engine(settings)
    try:
        assert set(settings.pool_sizes()) == {"sandkasten/runtime:%s" % n for n in (ADDED_JQ, ADDED_NOPY)}
        assert allowed_images(settings) == ["python", ADDED_JQ]  # kernelspecs: only the one with ipykernel
        await engine.start(reaper=False)
        await wait_for_ready(engine, 2)
        status = engine.pool_status()["images"]
        # The pool starts kernels where the image has one.
        assert status["sandkasten/runtime:%s" % ADDED_JQ]["ready_with_kernel"] == 1
        assert status["sandkasten/runtime:%s" % ADDED_NOPY]["ready_with_kernel"] == 0
        assert status["sandkasten/runtime:%s" % ADDED_NOPY]["failed"] == 0
        assert (await engine.create_session(image=ADDED_NOPY)).warm
        narrowed = load_settings(str(config))
        attach_catalog(narrowed)
        narrowed.security.allowed_images = ["python"]
        with pytest.raises(ConfigError, match="image '%s' is not allowed" % ADDED_JQ):
            narrowed.resolve_image("sandkasten/runtime:%s" % ADDED_JQ)
    finally:
        for session in engine.list_sessions():
            await engine.destroy_session(session.id, wait=True)
        await engine.close()


async def wait_for_ready(engine: Engine, images: int) -> None:
    deadline = time.monotonic() + 120
    while sum(1 for s in engine.pool_status()["images"].values() if s["ready"]) < images:
        assert time.monotonic() < deadline, engine.pool_status()
        await asyncio.sleep(0.1)


def test_a_repeated_build_is_a_no_op_and_a_changed_context_rebuilds(added_images: AddedImages) -> None:
    config = added_images.config
    again = sandkasten_cli(config, "images", "build", ADDED_JQ, ADDED_NOPY)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("is current") == 3 and "every image was current" in again.stdout
    (added_images.context / ".dockerignore").write_text("ignored.txt\n")
    (added_images.context / "notes.txt").write_text("sent to Docker, so part of the image's sources\n")
    assert listed(config)[ADDED_JQ]["state"] == "outdated"
    rebuilt = sandkasten_cli(config, "images", "build", ADDED_JQ)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "built sandkasten/layers:%s, sandkasten/runtime:%s" % (ADDED_JQ, ADDED_JQ) in rebuilt.stdout
    (added_images.context / "ignored.txt").write_text("not sent\n")
    assert listed(config)[ADDED_JQ]["state"] == "current"


def test_what_cannot_be_a_sandbox_image_says_why(config: Path, docker_client: Any) -> None:
    fedora = config.parent / "fedora"
    fedora.mkdir()
    (fedora / "Dockerfile").write_text(
        "FROM %s\nRUN rm -f /etc/os-release /usr/lib/os-release /usr/bin/apt-get"
        " && printf 'ID=fedora\\nPRETTY_NAME=\"Fedora Linux 40 (Container Image)\"\\n' > /etc/os-release\n" % BOOTSTRAP
    )
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as archive:
        release = b'ID=distroless\nPRETTY_NAME="No shell"\n'
        member = tarfile.TarInfo("etc/os-release")
        member.size = len(release)
        archive.addfile(member, io.BytesIO(release))
    docker_client.api.import_image_from_data(rootfs.getvalue(), repository="sk-test/noshell", tag="latest")
    try:
        other = refused(config, "images", "add", "sk-test-fedora", "--dockerfile", str(fedora / "Dockerfile"))
        assert "cannot build sk-test-fedora: Fedora Linux 40 (Container Image) has no python3 >= 3.9 and bash" in other
        assert "installed only on Debian and Ubuntu" in other
        shell = refused(config, "images", "add", "sk-test-noshell", "--from", "sk-test/noshell")
        assert "sk-test/noshell has no /bin/sh" in shell
        rows = listed(config)
        assert rows["sk-test-fedora"]["state"] == rows["sk-test-noshell"]["state"] == "failed"
        assert "Fedora Linux 40" in rows["sk-test-fedora"]["error"] and rows["sk-test-fedora"]["parent"] == BOOTSTRAP
        assert "has no /bin/sh" in rows["sk-test-noshell"]["error"]
        for name in ("sk-test-fedora", "sk-test-noshell"):
            assert sandkasten_cli(config, "images", "remove", name).returncode == 0
        assert set(listed(config)) == {"base", "python", "node"}
    finally:
        # The failed build's steps on the imported image (the fedora ones went with `images remove`).
        remove_dangling_descendants(docker_client, docker_client.images.get("sk-test/noshell").id)
        for tag in ("sk-test/noshell:latest", "sandkasten/layers:sk-test-fedora"):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)


@pytest.fixture
def cheap_image(config: Path, docker_client: Any) -> Iterator[str]:
    """An image added on top of layers:base (python3 is there already: only the runner layer is built)."""
    name = "sk-test-cheap"
    config.write_text(config.read_text() + "security: {allowed_images: [%s]}\ndefaults: {image: %s}\n" % (name, name))
    added = sandkasten_cli(config, "images", "add", name, "--from", "sandkasten/layers:base")
    assert added.returncode == 0, added.stdout + added.stderr
    yield name
    sandkasten_cli(config, "images", "remove", name)


async def test_remove_is_refused_while_a_session_uses_the_image(
    config: Path, cheap_image: str, docker_client: Any
) -> None:
    engine = Engine(load_settings(str(config)))
    record = await engine.create_session(image=cheap_image)
    try:
        busy = refused(config, "images", "remove", cheap_image)
        assert "image '%s' is in use by session %s" % (cheap_image, record.id) in busy
        assert listed(config)[cheap_image]["in_use"] is True
    finally:
        await engine.destroy_session(record.id, wait=True)
        await engine.close()
    removed = sandkasten_cli(config, "images", "remove", cheap_image)
    assert removed.returncode == 0 and removed.stdout == "removed %s\n" % cheap_image, removed.stderr
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get("sandkasten/runtime:%s" % cheap_image)
    assert cheap_image not in listed(config)
    docker_client.images.get("sandkasten/layers:base")  # what it was made from stays


def test_a_tag_made_from_something_else_is_not_taken_over(config: Path, docker_client: Any) -> None:
    docker_client.images.get("sandkasten/layers:base").tag("sandkasten/runtime", "sk-test-taken")
    try:
        taken = refused(config, "images", "add", "sk-test-taken", "--from", BOOTSTRAP)
        assert "sandkasten/runtime:sk-test-taken exists already" in taken
    finally:
        docker_client.images.remove("sandkasten/runtime:sk-test-taken")


def test_a_state_directory_without_a_store_lists_the_built_in_images(tmp_path: Path) -> None:
    state = Path(short_tempdir()) / "never-made"
    config = tmp_path / "sandkasten.yaml"
    config.write_text("state_dir: %s\n" % state)
    assert list(listed(config)) == ["base", "python", "node"]
    assert not state.exists()


def test_serve_builds_outdated_added_images_first_and_starts_without_a_failed_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "sk-test-serve"
    context = config.parent / "serve"
    context.mkdir()
    dockerfile = context / "Dockerfile"
    dockerfile.write_text("FROM sandkasten/layers:base\nRUN true\n")
    config.write_text(config.read_text() + "security: {allowed_images: [python, %s]}\n" % name)
    added = sandkasten_cli(config, "images", "add", name, "--dockerfile", str(dockerfile))
    assert added.returncode == 0, added.stdout + added.stderr
    try:
        settings = load_settings(str(config))
        attach_catalog(settings)
        dockerfile.write_text("FROM sandkasten/layers:base\nRUN echo changed\n")
        build_images(settings)
        assert "sandkasten: building added images first: %s" % name in capsys.readouterr().out
        assert listed(config)[name]["state"] == "current"
        dockerfile.write_text("FROM sandkasten/layers:base\nRUN exit 7\n")
        build_images(settings)  # reported, not raised: the server starts without it
        out = capsys.readouterr().out
        assert "returned a non-zero code: 7" in out and "sandkasten: starting without them" in out
        assert listed(config)[name]["state"] == "failed"
        build_images(settings)  # a failed image waits for `sandkasten images build NAME`
        assert "building added images" not in capsys.readouterr().out
    finally:
        assert sandkasten_cli(config, "images", "remove", name).returncode == 0


def test_one_build_of_an_image_at_a_time(config: Path) -> None:
    """A build marks the image with its process: another build (or a remove) waits for it, and a build whose
    process died is over (failed), so the image can be built again."""
    finished = subprocess.run(["true"], check=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    store = open_state_store(load_settings(str(config)).server.state_dir)
    try:
        for name, pid in (("sk-test-busy", os.getpid()), ("sk-test-died", dead.pid)):
            row = ImageRow(name, "from", "sandkasten/layers:base", None, time.time(), "test", "building", pid)
            store.add_image(row)
    finally:
        store.close()
    assert finished.returncode == 0
    rows = listed(config)
    assert rows["sk-test-busy"]["state"] == "building"
    assert rows["sk-test-died"]["state"] == "failed"
    assert "its build (process %d) ended before it finished" % dead.pid in rows["sk-test-died"]["error"]
    busy = refused(config, "images", "build", "sk-test-busy")
    assert "sk-test-busy is being built by process %d" % os.getpid() in busy
    assert "is being built" in refused(config, "images", "remove", "sk-test-busy")
    rebuilt = sandkasten_cli(config, "images", "build", "sk-test-died")
    try:
        assert rebuilt.returncode == 0 and "built sandkasten/runtime:sk-test-died" in rebuilt.stdout, rebuilt.stderr
        assert listed(config)["sk-test-died"]["state"] == "current"
    finally:
        assert sandkasten_cli(config, "images", "remove", "sk-test-died").returncode == 0
