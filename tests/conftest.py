"""Shared fixtures: runners on the host and inside real hardened containers.

A ``runner`` test runs once per target: "host" (the runner as a subprocess
with a temp dir as /workspace) and every sandbox image (the runner as PID 1 of a
container started with the hardening of DESIGN.md, reached only through the
bind-mounted socket directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker.errors
import pytest
from traitlets.config import Config

from sandkasten_kernel.engine.config import Settings, load_settings
from sandkasten_kernel.engine.docker_backend import connect, remove_sandbox, start_sandbox
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import EngineError
from sandkasten_kernel.engine.images import BOOTSTRAP_TAG, IMAGES
from sandkasten_kernel.engine.run_dirs import remove_run_dir, unmount_all_under
from sandkasten_kernel.engine.runner_client import RunnerClient
from sandkasten_kernel.engine.sandbox_spec import SandboxLimits, SandboxSpec
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

pytest_plugins = ["pytest_jupyter.jupyter_server"]
Completed = subprocess.CompletedProcess[str]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-seconds",
        default="45",
        help="how long tests/faults/test_load.py keeps 50 agents busy (300 for the five-minute soak)",
    )


IMAGE_NAMES = list(IMAGES)
TARGETS = ["host", *IMAGE_NAMES]


@dataclass
class Target:
    """A running runner and how to reach it."""

    kind: str  # "host" or an image name
    run_dir: str  # host path of the socket directory
    workspace: str  # the workspace as the runner sees it
    host_workspace: str | None  # the workspace on the host (host runner only)
    container: Any = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return os.path.join(self.run_dir, "control.sock")

    async def client(self) -> RunnerClient:
        return await RunnerClient.connect(self.socket, timeout=30)


def wait_until_ready(target: Target) -> Target:
    """Block until the runner answers hello (its shell is up by then)."""

    async def hello() -> None:
        client = await target.client()
        await client.close()

    asyncio.run(hello())
    return target


def short_tempdir() -> str:
    """Socket paths must stay under 108 bytes: pytest's tmp dirs are too deep."""
    return tempfile.mkdtemp(prefix="sk-", dir="/tmp")


def start_host_runner() -> Target:
    base = short_tempdir()
    run_dir, workspace = os.path.join(base, "run"), os.path.join(base, "ws")
    os.makedirs(run_dir)
    os.makedirs(workspace)
    home = os.path.join(base, "home")
    os.makedirs(home)
    # A home of its own: the host's dotfiles stay out of the runner's login shells (pyenv's
    # rehash takes a lock file that a process killed at start-up leaves behind for 60 s).
    env = dict(os.environ, HOME=home)
    with open(os.path.join(base, "runner.log"), "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandkasten_runner", "--run-dir", run_dir, "--workspace", workspace],
            stderr=log,
            env=env,
        )
    target = Target("host", run_dir, os.path.realpath(workspace), os.path.realpath(workspace), process=process)
    return wait_until_ready(target)


def stop_host_runner(target: Target) -> None:
    assert target.process is not None
    if target.process.poll() is None:
        target.process.send_signal(signal.SIGTERM)
        try:
            target.process.wait(10)
        except subprocess.TimeoutExpired:
            target.process.kill()
    shutil.rmtree(os.path.dirname(target.run_dir), ignore_errors=True)


def build_wheel(source: str | os.PathLike[str], out_dir: str | os.PathLike[str], pattern: str) -> Path:
    """Build ``source``'s wheel (no deps, no isolation) into ``out_dir``; the one wheel matching ``pattern``."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out_dir)]
    subprocess.run([*command, str(source)], check=True, timeout=300)
    (wheel,) = Path(out_dir).glob(pattern)
    return wheel


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        return connect()
    except EngineError as exc:
        pytest.fail("these tests need a Docker engine (.ci/run starts one): %s" % exc)


def start_container_runner(docker_client: Any, image: str, **spec_options: Any) -> Target:
    run_dir = os.path.join(short_tempdir(), "run")
    spec = SandboxSpec(
        image=IMAGES[image].tag,
        run_dir=run_dir,
        limits=SandboxLimits(cpus=1.0, memory_mb=512, pids=256),
        labels={"sandkasten.test": "1"},
        **spec_options,
    )
    container = start_sandbox(docker_client, spec)
    target = Target(image, run_dir, "/workspace", None, container=container)
    try:
        return wait_until_ready(target)
    except BaseException:
        stop_container_runner(target)
        raise


def stop_container_runner(target: Target) -> None:
    remove_sandbox(target.container)
    remove_run_dir(target.run_dir)
    shutil.rmtree(os.path.dirname(target.run_dir), ignore_errors=True)


@pytest.fixture(scope="module", params=TARGETS)
def runner(request: pytest.FixtureRequest) -> Iterator[Target]:
    """A runner per target, shared by the tests of one module."""
    if request.param == "host":
        target = start_host_runner()
        yield target
        stop_host_runner(target)
    else:
        target = start_container_runner(request.getfixturevalue("docker_client"), request.param)
        yield target
        stop_container_runner(target)


@pytest.fixture(scope="module", params=IMAGE_NAMES)
def sandbox(request: pytest.FixtureRequest, docker_client: Any) -> Iterator[Target]:
    """A hardened container per image (no host runner)."""
    target = start_container_runner(docker_client, request.param)
    yield target
    stop_container_runner(target)


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A short temp dir (for socket paths), removed afterwards."""
    path = short_tempdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host_runner() -> Iterator[Target]:
    """A fresh host runner for one test (for tests that end or break it)."""
    target = start_host_runner()
    yield target
    stop_host_runner(target)


# -- engines -----------------------------------------------------------------------------


def settings_for(state_dir: str, **pool: Any) -> Settings:
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenPool.images = pool.get("images", {"base": 1})
    config.SandkastenPool.with_kernel = pool.get("with_kernel", False)
    config.SandkastenDefaults.image = "base"
    return load_settings(None, config)


@pytest.fixture
def state_dir(docker_client: Any) -> Iterator[str]:
    path = short_tempdir()
    yield path
    # Nothing a test started may outlive it: remove what is left, then say so.
    leftovers = [
        c
        for c in docker_client.containers.list(all=True, filters={"label": "sandkasten.session"}, ignore_removed=True)
        if c.attrs["Mounts"] and any(m.get("Source", "").startswith(path) for m in c.attrs["Mounts"])
    ]
    for container in leftovers:
        container.remove(force=True)
    unmount_all_under(path)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, "containers left behind: %s" % [c.name for c in leftovers]


@pytest.fixture
async def engine(state_dir: str) -> AsyncIterator[Engine]:
    engine = Engine(settings_for(state_dir))
    await engine.start()
    yield engine
    for record in engine.list_sessions():
        await engine.destroy_session(record.id)
    await engine.close()


# -- `sandkasten serve` as a user runs it ---------------------------------------------------


@contextmanager
def serving(
    docker_client: Any, config: dict[str, Any], *, remove_leftovers: bool = False, host: str = "127.0.0.1"
) -> Iterator[Served]:
    """``sandkasten serve`` with ``config`` for the block; then stopped, its state removed, no container left.

    ``remove_leftovers`` force-removes the sandboxes the server left instead of
    failing: for servers a test kills (SIGKILL leaves them by design).
    """
    server = launcher.start(config, host=host)
    try:
        yield server
    finally:
        server.stop()  # a no-op for a server that has already ended
        leftovers = containers_of(docker_client, server.state_dir)
        if remove_leftovers:
            for name in leftovers:
                docker_client.containers.get(name).remove(force=True)
        server.remove_state()
    if not remove_leftovers:
        assert not leftovers, "sandkasten serve left containers behind: %s" % leftovers


@pytest.fixture(scope="session")
def served(docker_client: Any) -> Iterator[Served]:
    """``sandkasten serve`` in a subprocess, on a free port, with its own state; torn down clean."""
    workspaces_before = {v.name for v in docker_client.volumes.list(filters={"label": "sandkasten.workspace"})}
    config = {
        "pool": {"images": {"python": 1}},
        "quota": {"max_sessions": 30, "max_sessions_per_user": 30},
        "session": {"ttl_s": 900},
    }
    try:
        with serving(docker_client, config) as server:
            yield server
    finally:
        # Fuzzed requests make workspaces: remove those, and only those.
        for volume in docker_client.volumes.list(filters={"label": "sandkasten.workspace"}):
            if volume.name not in workspaces_before:
                volume.remove(force=True)


def containers_of(docker_client: Any, state_dir: str) -> list[str]:
    """Names of the sandbox containers whose run directory is under ``state_dir``."""
    return [
        c.name
        for c in docker_client.containers.list(all=True, filters={"label": "sandkasten.session"}, ignore_removed=True)
        if any(m.get("Source", "").startswith(state_dir) for m in c.attrs["Mounts"] or [])
    ]


# -- images added with `sandkasten images add` ------------------------------------------------

ADDED_JQ = "sk-test-jq"  # from a Dockerfile: jq from Debian's mirror, a VOLUME, ipykernel (it starts FROM layers:base)
BOOTSTRAP = BOOTSTRAP_TAG  # debootstrap's minbase: no python3
ADDED_NOPY = "sk-test-nopy"  # --from sandkasten/bootstrap:bookworm, a debootstrap minbase without python3
JQ_DOCKERFILE = """\
FROM sandkasten/layers:base
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
VOLUME /data
"""


def sandkasten_cli(
    config: str | os.PathLike[str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """``sandkasten ARGS --config CONFIG`` (never the user's own configuration), its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "sandkasten_server.cli", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SANDKASTEN_CONFIG": ""},
    )


@dataclass
class AddedImages:
    """The images the session's tests add, and the state directory whose catalog holds them."""

    config: Path  # its sandkasten.yaml: allows both images, no pool
    state_dir: str
    context: Path  # the jq image's Dockerfile and build context
    add_output: str  # what `sandkasten images add` printed, for the jq image then the other

    def adopt(self, config: str | os.PathLike[str]) -> None:
        """Add both images to another state directory too: the same sources, so the builds are no-ops."""
        for args in (["--dockerfile", str(self.context / "Dockerfile")], ["--from", "sandkasten/bootstrap:bookworm"]):
            name = ADDED_JQ if args[0] == "--dockerfile" else ADDED_NOPY
            added = sandkasten_cli(config, "images", "add", name, *args)
            assert added.returncode == 0, added.stdout + added.stderr


@pytest.fixture(scope="session")
def added_images(docker_client: Any) -> Iterator[AddedImages]:
    """Both images added once for the whole run (about a minute the first time: apt-get inside the builds),
    and removed, with the catalog's state directory, at its end."""
    base = Path(short_tempdir())
    context = base / "jq"
    context.mkdir()
    (context / "Dockerfile").write_text(JQ_DOCKERFILE)
    state_dir = str(base / "state")
    config = base / "sandkasten.yaml"
    config.write_text(
        "state_dir: %s\npool: {enabled: false}\nsecurity: {allowed_images: [base, python, %s, %s]}\n"
        % (state_dir, ADDED_JQ, ADDED_NOPY)
    )
    for name in (ADDED_JQ, ADDED_NOPY):  # what a run that was killed left: its sources are gone
        for tag in ("sandkasten/runtime:%s" % name, "sandkasten/layers:%s" % name):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(tag)
    outputs = []
    for name, args in ((ADDED_JQ, ["--dockerfile", str(context / "Dockerfile")]), (ADDED_NOPY, ["--from", BOOTSTRAP])):
        added = sandkasten_cli(config, "images", "add", name, *args)
        assert added.returncode == 0, added.stdout + added.stderr
        outputs.append(added.stdout)
    yield AddedImages(config, state_dir, context, "".join(outputs))
    for name in (ADDED_JQ, ADDED_NOPY):
        sandkasten_cli(config, "images", "remove", name)
    unmount_all_under(str(base))
    shutil.rmtree(base, ignore_errors=True)
