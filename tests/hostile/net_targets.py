"""Places on the network a sandbox with network must not reach, made real for the attack.

A sandbox's packets to a private or metadata address are forwarded by the host
like any others, so to see whether they get through there has to be something
listening there. A network namespace behind a veth pair plays the rest of the
network: it holds a private address of each range, the metadata addresses of
Alibaba and Oracle, and two ordinary (documentation) addresses, each with a TCP
listener on port 80, and the host routes them there. A listener on the host
itself (every address, IPv4 and IPv6) stands for the host's services.

All of it is removed afterwards, even on failure; a file lock keeps two test
runs on one host from building it at the same time (the addresses are fixed).
"""

from __future__ import annotations

import fcntl
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from sandkasten import SyncSession

PORT = 80
NAMESPACE = "sk-test-targets"
HOST_SIDE, NS_SIDE = "sk-tgt-h", "sk-tgt-n"
HOST_ADDRESS, NS_ADDRESS = "10.213.0.1", "10.213.0.2"  # a /30 between the host and the namespace
LOCK = "/tmp/sandkasten-net-targets.lock"

# What each address stands for -> the address; all dropped by default.
PRIVATE = {
    "10.0.0.0/8": NS_ADDRESS,
    "172.16.0.0/12": "172.31.255.253",
    "192.168.0.0/16": "192.168.255.253",
    "100.64.0.0/10 (Alibaba metadata)": "100.100.100.200",
    "192.0.0.0/24 (Oracle metadata)": "192.0.0.192",
    "169.254.0.0/16": "169.254.213.1",
}
# Two ordinary addresses (TEST-NET-2): reachable by default, the controls for the routes.
PUBLIC = ("198.51.100.213", "198.51.100.214")

_LISTENER = (
    """
import socket, sys, threading
def serve(address):
    server = socket.create_server((address, %d))
    while True:
        server.accept()[0].close()
for address in sys.argv[1:]:
    threading.Thread(target=serve, args=(address,), daemon=True).start()
print("listening", flush=True)
sys.stdin.read()  # until the test closes it
"""
    % PORT
)


@dataclass(frozen=True)
class Targets:
    private: dict[str, str]
    public: tuple[str, ...]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _quiet_ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=False, capture_output=True, text=True, timeout=30)


@contextmanager
def network_targets() -> Iterator[Targets]:
    """Listeners on the private, metadata and public addresses above, routed from the host."""
    with open(LOCK, "w") as lock, ExitStack() as undo:  # undone before the lock is let go
        fcntl.flock(lock, fcntl.LOCK_EX)
        _quiet_ip("netns", "del", NAMESPACE)  # a run killed before its cleanup
        _quiet_ip("link", "del", HOST_SIDE)
        _ip("netns", "add", NAMESPACE)
        undo.callback(_quiet_ip, "netns", "del", NAMESPACE)
        _ip("link", "add", HOST_SIDE, "type", "veth", "peer", "name", NS_SIDE)
        undo.callback(_quiet_ip, "link", "del", HOST_SIDE)
        _ip("link", "set", NS_SIDE, "netns", NAMESPACE)
        _ip("addr", "add", HOST_ADDRESS + "/30", "dev", HOST_SIDE)
        _ip("link", "set", HOST_SIDE, "up")
        _ip("-n", NAMESPACE, "addr", "add", NS_ADDRESS + "/30", "dev", NS_SIDE)
        _ip("-n", NAMESPACE, "link", "set", NS_SIDE, "up")
        _ip("-n", NAMESPACE, "link", "set", "lo", "up")
        _ip("-n", NAMESPACE, "route", "add", "default", "via", HOST_ADDRESS)
        addresses = [*PRIVATE.values(), *PUBLIC]
        for address in addresses:
            if address != NS_ADDRESS:
                _ip("-n", NAMESPACE, "addr", "add", address + "/32", "dev", "lo")
                _ip("route", "add", address + "/32", "via", NS_ADDRESS, "dev", HOST_SIDE)
                undo.callback(_quiet_ip, "route", "del", address + "/32", "via", NS_ADDRESS, "dev", HOST_SIDE)
        listener = subprocess.Popen(
            ["ip", "netns", "exec", NAMESPACE, sys.executable, "-c", _LISTENER, *addresses],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        undo.callback(_stop, listener)
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "listening"
        yield Targets(dict(PRIVATE), PUBLIC)


def _stop(process: subprocess.Popen[str]) -> None:
    process.kill()  # the one we started, by its own handle
    process.wait(10)


@contextmanager
def host_listener() -> Iterator[int]:
    """A TCP listener on every address of the host, IPv4 and IPv6; yields its port."""
    server = socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                server.accept()[0].close()
            except TimeoutError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        server.close()


_REACH = """
import concurrent.futures, json, socket, sys
def attempt(target):
    try:
        socket.create_connection((target[0], target[1]), timeout=3).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
targets = json.loads(sys.argv[1])
with concurrent.futures.ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(dict(zip([t[0] for t in targets], pool.map(attempt, targets)))))
"""


def reach(session: SyncSession, targets: list[tuple[str, int]]) -> dict[str, str]:
    """TCP connects from inside the sandbox, all at once: address -> 'connected' or the error's name."""
    session.write("reach.py", _REACH)
    result = session.exec("python3 reach.py '%s'" % json.dumps(targets), timeout_ms=30_000)
    try:
        outcome: dict[str, str] = json.loads(result.output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("the probe failed: %s" % result.output) from None
    return outcome


def gateway(session: SyncSession) -> str:
    """The sandbox's default gateway (the host's side of its bridge)."""
    routes = session.exec("cat /proc/net/route").output.splitlines()[1:]
    for line in routes:
        fields = line.split()
        if fields[1] == "00000000":
            return socket.inet_ntoa(bytes.fromhex(fields[2])[::-1])
    raise AssertionError("no default route in %s" % routes)


def iptables(*args: str, family: int = 4) -> subprocess.CompletedProcess[str]:
    binary = "iptables" if family == 4 else "ip6tables"
    return subprocess.run([binary, "-w", "5", *args], capture_output=True, text=True, timeout=30, check=False)


def host_addresses(family: int, *selector: str) -> list[str]:
    """The host's addresses of ``family`` (4 or 6) but loopback's, narrowed by ``ip addr show`` arguments."""
    shown = subprocess.run(
        ["ip", "-%d" % family, "-o", "addr", "show", *selector], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    addresses = [line.split()[3].split("/")[0] for line in shown]
    return [address for address in addresses if not address.startswith("127.") and address != "::1"]


def bridge_link_local(bridge: str) -> str | None:
    """The host's IPv6 link-local address on ``bridge``, if it has one."""
    found = host_addresses(6, "dev", bridge, "scope", "link")
    return found[0] if found else None
