"""The thin layer over docker-py: connect, start a sandbox container, remove it.

Calls here block; async callers run them in an executor (DESIGN.md decision 10).
Docker's exceptions become the engine's own, with messages a user can act on.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import docker
import docker.errors
import requests
from docker.models.containers import Container

from .errors import DockerUnavailable, EngineError, ImageError
from .sandbox_cgroup import sandbox_cgroup_parent
from .sandbox_network import EgressPolicy, ensure_sandbox_network
from .sandbox_spec import SandboxSpec, container_options, prepare_run_dir

T = TypeVar("T")


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the local engine (DOCKER_HOST honoured), API version negotiated."""
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            "the Docker engine does not answer (%s). Start it (dockerd) or set DOCKER_HOST." % exc
        ) from None
    return client


def start_sandbox(client: docker.DockerClient, spec: SandboxSpec, egress: EgressPolicy | None = None) -> Container:
    """Create the run directory and start a hardened container for ``spec``."""
    volumes = image_volumes(client, spec.image)
    prepare_run_dir(spec.run_dir)
    options: dict[str, Any] = container_options(spec, volumes)
    cgroup_parent = sandbox_cgroup_parent(client)
    if cgroup_parent is not None:
        options["cgroup_parent"] = cgroup_parent
    if spec.egress is not None:  # the proxy's network (made ready by the caller), at a fixed address
        endpoint = client.api.create_endpoint_config(ipv4_address=spec.egress.ip)
        options["networking_config"] = {spec.egress.network: endpoint}
    elif spec.network:  # the egress policy's network, its host rules checked (and repaired) first
        options["network_mode"] = ensure_sandbox_network(client, egress)
    try:
        container: Container = client.containers.run(**options)
    except docker.errors.ImageNotFound:
        raise ImageError("image %s is missing: build it with `sandkasten images build`" % spec.image) from None
    except docker.errors.APIError as exc:
        raise EngineError(
            "docker could not start a sandbox from %s: %s" % (spec.image, exc.explanation or exc)
        ) from None
    return container


def image_volumes(client: docker.DockerClient, image: str) -> list[str]:
    """The paths ``image`` declares as VOLUMEs (an added image's parent may): each would get an anonymous
    volume per sandbox on the host's disk, so the sandbox gets a tmpfs there instead (``container_options``).
    Asked first, so that a missing image is an ``ImageError`` before anything is made (never a pull)."""
    try:
        attributes = client.images.get(image).attrs
    except docker.errors.ImageNotFound:
        raise ImageError("image %s is missing: build it with `sandkasten images build`" % image) from None
    except docker.errors.APIError as exc:
        raise EngineError("docker could not inspect image %s: %s" % (image, exc.explanation or exc)) from None
    return sorted((attributes.get("Config") or {}).get("Volumes") or {})


def remove_sandbox(container: Container) -> None:
    """Stop and remove the container; a container already gone, or going, is not an error."""
    assert container.client is not None  # a container docker-py listed or made
    remove_sandbox_by_id(container.client, container.id or "")


def remove_sandbox_by_id(client: docker.DockerClient, container_id: str) -> None:
    """``remove_sandbox`` by container id: one API call (no inspect first, as docker-py's models make)."""
    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "already in progress" in str(exc.explanation):
            return  # someone else (another process, Docker's own cleanup) is removing it
        raise EngineError("docker could not remove %s: %s" % (container_id[:12], exc.explanation or exc)) from None


@dataclass(frozen=True)
class ContainerInfo:
    """What the engine needs of a container: its id, name, labels and whether it runs."""

    id: str
    name: str
    labels: dict[str, str]
    running: bool  # running or paused: its processes are there (a frozen sandbox is not a lost one)
    paused: bool = False  # frozen by Docker's pause (the cgroup freezer)


def _info(container: Container) -> ContainerInfo:
    return ContainerInfo(
        container.id or "",
        container.name or "",
        dict(container.labels or {}),
        container.status in ("running", "paused"),
        container.status == "paused",
    )


FREEZE_ATTEMPTS = 3


def set_paused(client: docker.DockerClient, container_id: str, paused: bool) -> None:
    """Freeze (``docker pause``) or thaw the container; one already so is left as it is."""
    try:
        if paused:
            _freeze(client, container_id)
        else:
            client.api.unpause(container_id)
    except docker.errors.NotFound:
        raise EngineError("container %s is gone" % container_id[:12]) from None
    except docker.errors.APIError as exc:
        # Docker says 409 "is already paused", or 500 "is not paused": settle it by asking.
        state = client.api.inspect_container(container_id)["State"]
        if bool(state.get("Paused")) != paused or not state.get("Running"):
            what = "pause" if paused else "resume"
            problem = exc.explanation or exc
            raise EngineError("docker could not %s %s: %s" % (what, container_id[:12], problem)) from None


def _freeze(client: docker.DockerClient, container_id: str) -> None:
    """``docker pause``, tried again when runc gives up: a freeze needs every process in the sandbox to run
    once, and on a busy host runc's few hundred milliseconds of trying can pass first ("unable to freeze";
    runc thaws the container then, so trying again is safe)."""
    for attempt in range(1, FREEZE_ATTEMPTS + 1):
        try:
            client.api.pause(container_id)
            return
        except docker.errors.APIError as exc:
            if attempt == FREEZE_ATTEMPTS or "unable to freeze" not in str(exc.explanation or exc):
                raise
            time.sleep(0.05 * attempt)


def frozen_usage(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    """Processes, memory and CPU time of a paused container, from Docker (its runner cannot answer).

    One reading of ``docker stats``, which is quick for a frozen container. The
    keys are those of the runner's ``usage``.
    """
    stats = client.api.stats(container_id, stream=False, one_shot=True)
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    limit = memory.get("limit")
    return {
        "pids": (stats.get("pids_stats") or {}).get("current", 0),
        "rss_bytes": detail.get("total_rss", detail.get("anon", 0)),  # cgroup v1, else v2
        "memory_bytes": memory.get("usage", 0),
        "memory_limit_bytes": limit if limit and limit < 1 << 60 else None,
        "cpu_ns": ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0),
    }


class DockerBackend:
    """Async face of the calls above: each blocking docker-py call runs in an executor."""

    def __init__(self, client: docker.DockerClient, egress: EgressPolicy | None = None) -> None:
        self.client = client
        self.egress = egress  # security.egress_allow/egress_deny for sandboxes with network
        self._cleanups: set[asyncio.Future[None]] = set()

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(None, functools.partial(call, *args))
        except requests.exceptions.ConnectionError as exc:
            raise DockerUnavailable("the Docker engine stopped answering: %s" % exc) from None

    async def start(self, spec: SandboxSpec) -> ContainerInfo:
        """Start a container for ``spec``; one whose start was cancelled is removed once Docker has made it."""
        started = asyncio.ensure_future(self._run(start_sandbox, self.client, spec, self.egress))
        try:
            return _info(await asyncio.shield(started))
        except asyncio.CancelledError:
            # The worker thread goes on and makes the container: remove it once it exists.
            def remove_when_made(done: asyncio.Future[Container]) -> None:
                if not done.cancelled() and done.exception() is None:
                    cleanup = asyncio.ensure_future(self.remove(done.result().id or ""))
                    self._cleanups.add(cleanup)
                    cleanup.add_done_callback(self._cleanups.discard)

            started.add_done_callback(remove_when_made)
            raise

    async def remove(self, container_id: str) -> None:
        """Stop and remove the container; one already gone is not an error."""
        await self._run(remove_sandbox_by_id, self.client, container_id)

    async def containers(self, label: str) -> list[ContainerInfo]:
        """Every container with ``label``, running or not."""

        def listing() -> list[ContainerInfo]:
            return [
                _info(c) for c in self.client.containers.list(all=True, filters={"label": label}, ignore_removed=True)
            ]

        return await self._run(listing)

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        """The container's current info, or None when it no longer exists."""

        def inspect() -> ContainerInfo | None:
            try:
                return _info(self.client.containers.get(container_id))
            except docker.errors.NotFound:
                return None

        return await self._run(inspect)

    async def set_paused(self, container_id: str, paused: bool) -> None:
        """Freeze or thaw the container (``set_paused``)."""
        await self._run(set_paused, self.client, container_id, paused)

    async def root_pid(self, container_id: str) -> int:
        """The host PID of the container's first process (0 when it is not running)."""

        def pid() -> int:
            try:
                return int(self.client.api.inspect_container(container_id)["State"].get("Pid") or 0)
            except docker.errors.NotFound:
                return 0

        return await self._run(pid)

    async def frozen_usage(self, container_id: str) -> dict[str, Any]:
        """What a paused container holds (``frozen_usage``)."""
        return await self._run(frozen_usage, self.client, container_id)

    async def runtimes(self) -> set[str]:
        """The OCI runtimes registered with the engine (runc, and e.g. runsc for gVisor)."""

        def runtimes() -> set[str]:
            return set(self.client.info().get("Runtimes", {}))

        return await self._run(runtimes)

    async def version(self) -> dict[str, Any]:
        """The engine's version report; raises ``DockerUnavailable`` when it does not answer."""

        def version() -> dict[str, Any]:
            result = self.client.version()
            assert isinstance(result, dict)
            return result

        return await self._run(version)

    # -- volumes (workspaces) ---------------------------------------------------------

    async def ensure_volume(self, name: str, labels: dict[str, str], bind_to: str | None = None) -> None:
        """Create the volume unless it exists; with ``bind_to``, as a bind of that host directory."""

        def ensure() -> None:
            try:
                self.client.volumes.get(name)
            except docker.errors.NotFound:
                options = {"type": "none", "o": "bind", "device": bind_to} if bind_to else None
                self.client.volumes.create(name=name, labels=labels, driver_opts=options)

        await self._run(ensure)

    async def volume_exists(self, name: str) -> bool:
        """Whether Docker has a volume named ``name``."""

        def exists() -> bool:
            try:
                self.client.volumes.get(name)
                return True
            except docker.errors.NotFound:
                return False

        return await self._run(exists)

    async def volumes(self, label: str) -> list[dict[str, Any]]:
        """Volumes with ``label``, with their size where the engine reports it."""

        def listing() -> list[dict[str, Any]]:
            sizes = {v["Name"]: v.get("UsageData", {}).get("Size", -1) for v in self.client.df().get("Volumes") or []}
            return [
                {"name": v.name, "labels": v.attrs.get("Labels") or {}, "size": sizes.get(v.name, -1)}
                for v in self.client.volumes.list(filters={"label": label})
            ]

        return await self._run(listing)

    async def remove_volume(self, name: str) -> bool:
        """Delete the volume; False if there was none."""

        def remove() -> bool:
            try:
                self.client.volumes.get(name).remove()
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                raise EngineError("docker could not remove volume %s: %s" % (name, exc.explanation or exc)) from None

        return await self._run(remove)
