"""Code in a sandbox trying to get out: each attempt fails inside, and the sandbox is still fine after.

The sandbox user is uid 1000 with no capabilities, no-new-privileges, a
read-only root and Docker's default seccomp profile and masked /proc paths.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Iterator

import pytest

from sandkasten import SyncSession
from sandkasten_kernel.engine.sandbox_network import BRIDGE_NAME
from sandkasten_server.launcher import Served
from tests.hostile.net_targets import (
    Targets,
    bridge_link_local,
    gateway,
    host_addresses,
    host_listener,
    network_targets,
    reach,
)

Sessions = Callable[..., SyncSession]

PY = "python3 -c '%s' 2>&1 | tail -1"
EPERM = "Operation not permitted"

# (attack, command, what the output must contain). Each command prints its outcome.
ATTEMPTS = [
    ("write to /", "touch /evil; echo rc=$?", "Read-only file system"),
    ("write to /usr", "echo x > /usr/bin/evil; echo rc=$?", "Read-only file system"),
    ("mount a filesystem", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m 2>&1; echo rc=$?", "rc=32"),
    ("new user namespace", "unshare -r true 2>&1; echo rc=$?", "Operation not permitted"),
    ("new mount namespace", "unshare -m true 2>&1; echo rc=$?", "Operation not permitted"),
    ("setuid su", "su -c id root </dev/null 2>&1; echo rc=$?", "rc=1"),
    ("setuid mount", "mount --bind /tmp /workspace 2>&1; echo rc=$?", "rc=32"),
    ("sysrq trigger", "echo b > /proc/sysrq-trigger 2>&1; echo rc=$?", "rc=1"),
    ("kernel memory", "head -c1 /dev/mem 2>&1; head -c1 /dev/kmsg 2>&1; echo rc=$?", "No such file"),
    ("raw IP socket", PY % "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)", EPERM),
    ("packet socket", PY % "import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)", EPERM),
    (
        "ptrace the runner",
        PY % "import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.ptrace(16, 1, 0, 0), ctypes.get_errno())",
        "-1 1",  # EPERM: the runner is not dumpable
    ),
    ("signal the runner", "kill -9 1; kill -STOP 1; sleep 0.2; echo alive", "alive"),
    ("load a kernel module", "insmod /nonexistent.ko 2>&1 || modprobe dummy 2>&1; echo rc=$?", "rc=1"),
    ("change the clock", "date -s 2000-01-01 2>&1; echo rc=$?", "Operation not permitted"),
    ("keyring", PY % "import ctypes; print(ctypes.CDLL(None).syscall(248, 0, 0, 0, 0))", "-1"),  # add_key: seccomp
]


@pytest.mark.parametrize(("attack", "command", "expected"), ATTEMPTS, ids=[a[0] for a in ATTEMPTS])
def test_an_escape_attempt_fails_inside(sessions: Sessions, attack: str, command: str, expected: str) -> None:
    session = sessions()
    result = session.exec(command, timeout_ms=20_000)
    assert expected in result.output, (attack, result.output)
    assert not result.timed_out
    # The sandbox is still whole: its runner and shell answer, as the same user.
    assert session.exec("id -u; echo ok").output.split() == ["1000", "ok"]


def test_the_writable_places_are_nosuid_and_nodev_but_run_compiled_code(sessions: Sessions) -> None:
    # What `pip install --user` puts in the home directory must load (numpy's .so files);
    # what could gain privileges there (setuid files, device nodes) must not work.
    session = sessions()
    flags = session.exec("grep -E ' (/tmp|/home/sandbox|/workspace) ' /proc/mounts").output.splitlines()
    assert len(flags) == 3, flags
    for line in flags:
        options = line.split()[3].split(",")
        assert "nosuid" in options and "nodev" in options and "noexec" not in options, line
    ran = session.exec("cp /bin/true ~/t && ~/t && cp /bin/true /tmp/t && /tmp/t && echo ran").output
    assert ran == "ran\n"


def test_the_host_is_not_visible_from_inside(sessions: Sessions) -> None:
    session = sessions()
    checks = {
        "docker socket": "ls /var/run/docker.sock /run/docker.sock 2>&1 | grep -c 'No such file'",
        "host processes": "ls /proc | grep -cE '^[0-9]+$'",  # only the sandbox's own
        "capabilities": "grep CapEff /proc/self/status",
        "no new privileges": "grep NoNewPrivs /proc/self/status",
        "run directory": "ls -A /run/sandkasten",
    }
    seen = {name: session.exec(command).output.strip() for name, command in checks.items()}
    assert seen["docker socket"] == "2"
    assert int(seen["host processes"]) < 20
    assert seen["capabilities"].endswith("0000000000000000")
    assert seen["no new privileges"].endswith("1")
    assert seen["run directory"] == "control.sock"  # the runner's socket and nothing of the host


def _server_port(server: Served) -> int:
    port = urllib.parse.urlsplit(server.url).port
    assert port is not None
    return port


def _connect_from(session: SyncSession, host: str, port: int) -> str:
    """What a TCP connect from inside the sandbox gives: 'connected' or the error's name."""
    code = (
        "import socket\n"
        "try:\n"
        "    socket.create_connection((%r, %d), timeout=3).close(); print('connected')\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n" % (host, port)
    )
    session.write("connect.py", code)
    return session.exec("python3 connect.py", timeout_ms=20_000).output.strip()


def test_with_network_off_nothing_is_reachable(sessions: Sessions, hostile_server: Served) -> None:
    session = sessions()
    assert session.exec("cat /proc/net/dev | grep -c :").output.strip() == "1"  # lo only
    for host, port in (("127.0.0.1", _server_port(hostile_server)), ("169.254.169.254", 80), ("1.1.1.1", 53)):
        assert _connect_from(session, host, port) != "connected", host


def test_with_network_on_the_host_other_sandboxes_and_metadata_are_out_of_reach(
    sessions: Sessions, hostile_server: Served
) -> None:
    online, neighbour = sessions(network=True), sessions(network=True)
    neighbour.exec("nohup python3 -m http.server 8000 >/dev/null 2>&1 &")
    neighbour_ip = neighbour.exec("hostname -I").output.split()[0]
    deadline = time.monotonic() + 20
    while _connect_from(neighbour, neighbour_ip, 8000) != "connected":  # the server starts up
        assert time.monotonic() < deadline, "the neighbour's server never listened"
    host_side = gateway(online)
    assert _connect_from(online, neighbour_ip, 8000) != "connected", "another sandbox is reachable"
    assert _connect_from(online, host_side, _server_port(hostile_server)) != "connected", "the server is reachable"
    assert _connect_from(online, "169.254.169.254", 80) != "connected", "the metadata address is reachable"
    assert _connect_from(online, "deb.debian.org", 80) == "connected"  # and yet it is online


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    with network_targets() as made:
        yield made


def test_with_network_on_private_ranges_and_metadata_addresses_are_out_of_reach(
    sessions: Sessions, targets: Targets
) -> None:
    """The host forwards to its other networks and to the clouds' metadata services: not for sandboxes."""
    online = sessions(network=True)
    outcome = reach(online, [(address, 80) for address in [*targets.private.values(), *targets.public]])
    assert all(outcome[address] == "connected" for address in targets.public), outcome  # the routes work
    reached = [name for name, address in targets.private.items() if outcome[address] == "connected"]
    assert not reached, "reachable from a sandbox: %s (%s)" % (reached, outcome)
    assert _connect_from(online, "deb.debian.org", 80) == "connected"  # names still resolve: DNS goes through


def test_with_network_on_the_host_is_out_of_reach_on_every_address(sessions: Sessions) -> None:
    online = sessions(network=True)
    with host_listener() as port:
        outcome = reach(online, [(address, port) for address in {gateway(online), *host_addresses(4)}])
    assert "connected" not in outcome.values(), outcome


def test_with_network_on_a_sandbox_has_no_ipv6(sessions: Sessions) -> None:
    """No IPv6 address but loopback's, so no way to the host or a neighbour over IPv6 (link-local included)."""
    online = sessions(network=True)
    interfaces = [line.split()[-1] for line in online.exec("cat /proc/net/if_inet6").output.splitlines()]
    assert set(interfaces) <= {"lo"}, interfaces
    link_local = bridge_link_local(BRIDGE_NAME)
    with host_listener() as port:
        targets = [(address, port) for address in host_addresses(6, "scope", "global")]
        if link_local is not None:
            targets.append((link_local + "%eth0", port))
        if targets:
            outcome = reach(online, targets)
            assert "connected" not in outcome.values(), outcome
