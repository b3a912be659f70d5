"""The network of sandboxes that ask for one: out to the internet, and nowhere else.

Docker's default bridge lets containers reach each other, every service of the
host, and the cloud metadata address (169.254.169.254, which hands out the
host's credentials on most clouds). Sandboxes with network get their own bridge
instead, with inter-container traffic off, and two iptables rules on the host:
nothing from the bridge to the host itself (INPUT), and nothing to link-local
addresses (DOCKER-USER, which Docker evaluates before its own forwarding rules).

The rules need root and iptables on the host, as Docker itself does. When they
cannot be set, network sessions are refused: an isolated sandbox with a hole
in it is worse than none.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

import docker
import docker.errors

from .errors import EngineError

NETWORK_NAME = "sandkasten-net"
BRIDGE_NAME = "sk-br0"
LINK_LOCAL = "169.254.0.0/16"

# (table chain, rule) pairs, checked with -C and inserted with -I when missing.
_RULES: list[tuple[str, list[str]]] = [
    # Replies to connections the host made are fine; nothing the sandbox starts is.
    ("INPUT", ["-i", BRIDGE_NAME, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"]),
    ("INPUT", ["-i", BRIDGE_NAME, "-j", "DROP"]),
    ("DOCKER-USER", ["-i", BRIDGE_NAME, "-d", LINK_LOCAL, "-j", "DROP"]),
]

_ready: set[int] = set()  # ids of clients whose network is known set up (once per process)
_lock = threading.Lock()


class NetworkIsolationError(EngineError):
    """The isolated network for sandboxes could not be set up."""


def ensure_sandbox_network(client: docker.DockerClient) -> str:
    """Create the sandboxes' bridge and its host rules if missing; return the network's name."""
    with _lock:
        if id(client) not in _ready:
            _ensure_bridge(client)
            _ensure_rules()
            _ready.add(id(client))
    return NETWORK_NAME


def _ensure_bridge(client: docker.DockerClient) -> None:
    try:
        client.networks.get(NETWORK_NAME)
        return
    except docker.errors.NotFound:
        pass
    try:
        client.networks.create(
            NETWORK_NAME,
            driver="bridge",
            options={
                "com.docker.network.bridge.name": BRIDGE_NAME,
                "com.docker.network.bridge.enable_icc": "false",  # sandboxes cannot reach each other
            },
            labels={"sandkasten.network": "1"},
        )
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # another process made it meanwhile
            raise NetworkIsolationError("docker could not create %s: %s" % (NETWORK_NAME, exc.explanation)) from None


def _ensure_rules() -> None:
    iptables = shutil.which("iptables")
    if iptables is None:
        raise NetworkIsolationError("iptables is missing, so sandboxes with network cannot be kept off the host")
    for chain, rule in _RULES:
        if _iptables(iptables, "-C", chain, *rule).returncode == 0:
            continue
        # -A keeps the ACCEPT of replies ahead of the DROP; DOCKER-USER's own RETURN must stay last.
        position = ["-I", chain, "1"] if chain == "DOCKER-USER" else ["-A", chain]
        added = _iptables(iptables, *position, *rule)
        if added.returncode != 0:
            raise NetworkIsolationError(
                "could not add the iptables rule '%s %s': %s" % (chain, " ".join(rule), added.stderr.strip())
            )


def _iptables(iptables: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([iptables, "-w", "5", *args], capture_output=True, text=True, timeout=30, check=False)
