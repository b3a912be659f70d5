"""Sandboxes with network against the host's firewall: egress lists, planted rules, flushed rules, IPv6.

A server of its own, with ``security.egress_allow`` / ``egress_deny`` set, so
its sandboxes get a bridge of their own (the policy's) and the rules planted
or removed here never touch the bridge of the package's shared server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandkasten import SyncSandboxClient, SyncSession
from sandkasten_kernel.engine.config import ConfigError, load_settings
from sandkasten_kernel.engine.images import IMAGES
from sandkasten_kernel.engine.sandbox_network import (
    EgressPolicy,
    NetworkIsolationError,
    ensure_sandbox_network,
    remove_sandbox_network,
)
from sandkasten_server.launcher import Served
from tests.conftest import serving
from tests.hostile.conftest import made_sessions
from tests.hostile.net_targets import (
    NS_ADDRESS,
    Targets,
    bridge_link_local,
    gateway,
    host_listener,
    iptables,
    network_targets,
    reach,
)

pytestmark = pytest.mark.docker

ALLOW = [NS_ADDRESS + "/32", "198.51.100.213/32"]  # a hole in 10.0.0.0/8, and one in the deny below
DENY = ["198.51.100.0/24"]
POLICY = EgressPolicy.of(ALLOW, DENY)
ALIBABA_METADATA = "100.100.100.200"

Sessions = Callable[..., SyncSession]


@pytest.fixture(scope="module")
def targets() -> Iterator[Targets]:
    with network_targets() as made:
        yield made


@pytest.fixture(scope="module")
def egress_server(docker_client: Any) -> Iterator[Served]:
    """A server with the egress lists above, so its sandboxes get the policy's own bridge."""
    config = {
        "pool": {"enabled": False},
        "security": {"allow_network": True, "egress_allow": ALLOW, "egress_deny": DENY},
        "defaults": {"memory_mb": 256, "pids": 128, "tmp_mb": 64, "workspace_mb": 64},
    }
    try:
        with serving(docker_client, config) as server:
            yield server
    finally:
        remove_sandbox_network(docker_client, POLICY)  # the policy's bridge outlives the server that made it


@pytest.fixture
def sessions(egress_server: Served) -> Iterator[Sessions]:
    with SyncSandboxClient(egress_server.base_url, egress_server.api_key) as client:
        yield from made_sessions(client)


def test_egress_allow_opens_a_hole_and_egress_deny_adds_a_drop(sessions: Sessions, targets: Targets) -> None:
    online = sessions(network=True)
    outcome = reach(online, [(address, 80) for address in [*targets.private.values(), *targets.public]])
    assert outcome[NS_ADDRESS] == "connected", outcome  # in 10.0.0.0/8, but allowed
    assert outcome["198.51.100.213"] == "connected", outcome  # denied by its /24, allowed by itself: allow wins
    assert outcome["198.51.100.214"] != "connected", outcome  # denied
    still_dropped = [address for address in targets.private.values() if address != NS_ADDRESS]
    assert all(outcome[address] != "connected" for address in still_dropped), outcome


def _plant(chain: str) -> Callable[[], object]:
    """An ACCEPT for the bridge at the top of ``chain``, as a careless firewall would add; returns its removal."""
    rule = ["-i", POLICY.bridge, "-j", "ACCEPT"]
    assert iptables("-I", chain, "1", *rule).returncode == 0
    return lambda: iptables("-D", chain, *rule)


def test_an_earlier_accept_opens_neither_the_host_nor_the_private_ranges(sessions: Sessions, targets: Targets) -> None:
    removals = []
    try:
        for chain in ("INPUT", "FORWARD", "DOCKER-USER"):
            removals.append(_plant(chain))
        online = sessions(network=True)  # the server puts its rules back on top
        with host_listener() as port:
            outcome = reach(online, [(gateway(online), port), (ALIBABA_METADATA, 80), ("198.51.100.214", 80)])
        assert "connected" not in outcome.values(), outcome
    finally:
        for remove in removals:
            remove()


HOOKS = [("INPUT", "SANDKASTEN-IN-" + POLICY.bridge), ("FORWARD", "SANDKASTEN-FWD-" + POLICY.bridge)]


def test_rules_removed_behind_the_servers_back_are_back_with_the_next_network_session(
    sessions: Sessions, targets: Targets
) -> None:
    """A firewall reload or a restarted dockerd drops rules; the next network session must not go out without them."""
    first = sessions(network=True)
    for family in (4, 6):
        for builtin, chain in HOOKS:
            iptables("-D", builtin, "-i", POLICY.bridge, "-j", chain, family=family)
            iptables("-F", chain, family=family)
    assert reach(first, [(ALIBABA_METADATA, 80)]) == {ALIBABA_METADATA: "connected"}  # the rules are gone indeed
    second = sessions(network=True)
    for family in (4, 6):
        for builtin, chain in HOOKS:
            assert iptables("-C", builtin, "-i", POLICY.bridge, "-j", chain, family=family).returncode == 0
            assert iptables("-S", chain, family=family).stdout.count("\n-A ") > 0
    for session in (first, second):
        with host_listener() as port:
            outcome = reach(session, [(gateway(session), port), (ALIBABA_METADATA, 80)])
        assert "connected" not in outcome.values(), outcome


_V6_PROBE = """
import socket, sys, time
deadline = time.monotonic() + 15
while time.monotonic() < deadline:  # until eth0's link-local address is past duplicate detection
    if any(line.split()[-1] == "eth0" and int(line.split()[4], 16) & 0x40 == 0
           for line in open("/proc/net/if_inet6")):
        break
    time.sleep(0.2)
else:
    print("no-ipv6"); sys.exit()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
    print("connected")
except OSError as exc:
    print(type(exc).__name__)
"""


def test_with_ipv6_on_inside_the_host_is_still_out_of_reach_over_ipv6(sessions: Sessions, docker_client: Any) -> None:
    """A Docker that leaves IPv6 on in containers gives a sandbox a link-local address, next to the host's."""
    sessions(network=True)  # the network and its rules exist
    link_local = bridge_link_local(POLICY.bridge)
    if link_local is None:
        pytest.skip("the host has no IPv6 on %s" % POLICY.bridge)
    with host_listener() as port:
        container = docker_client.containers.run(
            IMAGES["base"].tag,
            entrypoint=["python3", "-c", _V6_PROBE, link_local + "%eth0", str(port)],
            network=POLICY.network,
            sysctls={"net.ipv6.conf.all.disable_ipv6": "0", "net.ipv6.conf.eth0.disable_ipv6": "0"},
            user="1000:1000",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            labels={"sandkasten.test": "1"},
            detach=True,
        )
        try:
            container.wait(timeout=60)
            outcome = container.logs().decode().strip()
        finally:
            container.remove(force=True)
    assert outcome != "no-ipv6", "the probe got no IPv6 address: the attack was not tried"
    assert outcome != "connected", "the host answers over IPv6 from the sandboxes' bridge"


def test_without_a_firewall_to_set_network_sessions_are_refused(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """No iptables (or no right to use it): a clear refusal, never a sandbox online without its rules."""
    policy = EgressPolicy.of(deny=["198.51.100.0/25"])
    try:
        with monkeypatch.context() as no_iptables:
            no_iptables.setenv("PATH", str(tmp_path))  # an empty directory: no iptables-save, no iptables-restore
            with pytest.raises(NetworkIsolationError, match="sessions with network are refused: iptables-save"):
                ensure_sandbox_network(docker_client, policy)
    finally:
        remove_sandbox_network(docker_client, policy)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (["10.0.0.300/8"], "is not an IPv4 network"),
        (["10.0.0.1/8"], "host bits"),
        (["fd00::/8"], "IPv6"),
        ([5], "not the int 5"),
    ],
)
@pytest.mark.parametrize("key", ["egress_allow", "egress_deny"])
def test_a_bad_cidr_is_refused_naming_the_key(tmp_path: Any, key: str, value: Any, reason: str) -> None:
    path = tmp_path / "sandkasten.yaml"
    path.write_text("security:\n  %s: [%s]\n" % (key, value[0]))
    with pytest.raises(ConfigError) as refused:
        load_settings(str(path))
    assert "security.%s" % key in str(refused.value) and reason in str(refused.value), str(refused.value)


def test_the_egress_lists_are_read_and_normalised(tmp_path: Any) -> None:
    path = tmp_path / "sandkasten.yaml"
    path.write_text("security:\n  egress_allow: [10.1.2.3, 10.9.0.0/16]\n  egress_deny: [0.0.0.0/0]\n")
    security = load_settings(str(path)).security
    assert security.egress_allow == ["10.1.2.3/32", "10.9.0.0/16"]
    assert security.egress_deny == ["0.0.0.0/0"]
