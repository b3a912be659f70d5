"""What a sandbox container is: the hardening of DESIGN.md decision 1 as docker-py options.

A sandbox is a container plus a host run directory. The container gets a
read-only root, no capabilities, no-new-privileges, a non-root user, pids,
memory and CPU limits, tmpfs for /tmp and $HOME, no network unless asked for,
and a writable /workspace. The run directory, bind-mounted at /run/sandkasten,
is the only host path it sees; the runner's and the kernel's sockets live there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import docker.types

from .errors import EngineError
from .run_dirs import RUN_DIR_MODE, mount_small_tmpfs
from .sandbox_network import NETWORK_NAME

SANDBOX_UID = 1000
RUN_DIR_IN_SANDBOX = "/run/sandkasten"
WORKSPACE_IN_SANDBOX = "/workspace"
HOME_IN_SANDBOX = "/home/sandbox"
LABEL_SANDBOX = "sandkasten.sandbox"
# sockaddr_un.sun_path: 108 bytes with the NUL. The longest socket in the run
# directory is a kernel socket, "kernel-<port>" with a five-digit port.
MAX_SOCKET_PATH = 107
LONGEST_SOCKET_NAME = "kernel-65535"


@dataclass(frozen=True)
class SandboxLimits:
    """The resources one sandbox may use: CPUs, memory, processes and its tmpfs sizes."""

    cpus: float = 1.0
    memory_mb: int = 512
    pids: int = 256
    tmp_mb: int = 256
    home_mb: int = 128
    workspace_mb: int = 1024  # only for a workspace on tmpfs (no named volume)


@dataclass(frozen=True)
class EgressAttachment:
    """A place on the filtering proxy's network (``egress_network``): the way out of a sandbox with a domain policy."""

    network: str  # the Docker network
    ip: str  # the sandbox's fixed address, which the proxy knows its policy by
    proxy: str  # http://gateway:port
    gateway: str
    resolv_conf: str  # host path of a resolv.conf pointing nowhere: the sandbox resolves no names itself

    def proxy_env(self) -> dict[str, str]:
        """What tools read to find the proxy (pip, requests, curl, git, apt, npm)."""
        env = {"NO_PROXY": "localhost,127.0.0.1"}
        for name in ("HTTP_PROXY", "HTTPS_PROXY"):
            env[name] = env[name.lower()] = self.proxy
        env["no_proxy"] = env["NO_PROXY"]
        return env


@dataclass(frozen=True)
class SandboxSpec:
    """Everything needed to start one sandbox container: image, run directory, workspace, limits, network."""

    image: str
    run_dir: str  # host path, bind-mounted at /run/sandkasten
    workspace_volume: str | None = None  # a named volume, or None for a tmpfs /workspace
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    network: bool = False
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    runtime: str | None = None  # an OCI runtime registered with Docker (security.runtime); None: the default
    egress: EgressAttachment | None = None  # network through the filtering proxy only (network is then True)


def check_run_dir(run_dir: str) -> None:
    """Refuse a run directory whose socket paths would not fit a Unix socket address."""
    longest = os.path.join(run_dir, LONGEST_SOCKET_NAME)
    if len(longest.encode()) > MAX_SOCKET_PATH:
        raise EngineError(
            "the run directory %s is too long for Unix sockets (%d bytes in %s, at most %d): "
            "use a shorter state_dir" % (run_dir, len(longest.encode()), longest, MAX_SOCKET_PATH)
        )


def prepare_run_dir(run_dir: str) -> None:
    """Create the host run directory: root's, the sandbox's to write in, nobody else's (RUN_DIR_MODE).

    Without root it is the server user's, private to it (and its names cannot be pinned).
    """
    check_run_dir(run_dir)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    if os.geteuid() != 0:
        os.chmod(run_dir, 0o700)
        return
    if not os.path.ismount(run_dir):
        mount_small_tmpfs(run_dir, SANDBOX_UID)
    os.chown(run_dir, 0, SANDBOX_UID)
    os.chmod(run_dir, RUN_DIR_MODE)


def _tmpfs(size_mb: int, mode: str, owned: bool = False) -> str:
    # exec, said outright: Docker's default is noexec, and then `pip install --user` of anything
    # with compiled code cannot load it. noexec would bound nothing here: any interpreter runs
    # code from those files anyway, and no setuid or device file can be made on them (nosuid,nodev).
    options = "rw,exec,nosuid,nodev,size=%dm,mode=%s" % (size_mb, mode)
    if owned:
        options += ",uid=%d,gid=%d" % (SANDBOX_UID, SANDBOX_UID)
    return options


def container_options(spec: SandboxSpec, image_volumes: list[str] | None = None) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``/``run``. ``image_volumes``: the image's VOLUME
    paths, each a tmpfs of the /tmp size owned by the sandbox user rather than an anonymous volume on the
    host's disk (its pages count against the sandbox's memory, like every tmpfs here)."""
    limits = spec.limits
    mounted_here = {RUN_DIR_IN_SANDBOX, WORKSPACE_IN_SANDBOX}  # mounted below, whatever the image says
    volumes = [path.rstrip("/") or "/" for path in image_volumes or []]
    tmpfs = {path: _tmpfs(limits.tmp_mb, "0755", owned=True) for path in volumes if path not in mounted_here}
    tmpfs["/tmp"] = _tmpfs(limits.tmp_mb, "1777")
    tmpfs[HOME_IN_SANDBOX] = _tmpfs(limits.home_mb, "0700", owned=True)
    mounts = [docker.types.Mount(RUN_DIR_IN_SANDBOX, spec.run_dir, type="bind")]
    if spec.workspace_volume:
        mounts.append(docker.types.Mount(WORKSPACE_IN_SANDBOX, spec.workspace_volume, type="volume"))
    else:
        tmpfs[WORKSPACE_IN_SANDBOX] = _tmpfs(limits.workspace_mb, "0755", owned=True)
    labels = {LABEL_SANDBOX: "1", **spec.labels}
    options: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "detach": True,
        "user": "%d:%d" % (SANDBOX_UID, SANDBOX_UID),
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": limits.pids,
        "mem_limit": "%dm" % limits.memory_mb,
        "memswap_limit": "%dm" % limits.memory_mb,  # no swap beyond the memory limit
        "nano_cpus": int(limits.cpus * 1e9),
        "tmpfs": tmpfs,
        "mounts": mounts,
        "network_mode": NETWORK_NAME if spec.network else "none",  # see sandbox_network
        "hostname": "sandbox",
        "environment": dict(spec.env),
        "labels": labels,
        "ulimits": [docker.types.Ulimit(name="nofile", soft=4096, hard=4096)],
    }
    if spec.runtime:
        options["runtime"] = spec.runtime
    if spec.egress is not None:
        # Its own network, with the address start_sandbox asks for; DNS goes to the gateway (and is dropped
        # there), and the resolv.conf that points nowhere makes a lookup fail at once instead of in 10 s.
        del options["network_mode"]
        options["network"] = spec.egress.network
        options["dns"] = [spec.egress.gateway]
        options["environment"] = {**spec.egress.proxy_env(), **options["environment"]}
        mounts.append(docker.types.Mount("/etc/resolv.conf", spec.egress.resolv_conf, type="bind", read_only=True))
    return options
