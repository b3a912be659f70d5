"""The network of sandboxes that ask for one: out to the internet, and nowhere else.

Docker's default bridge lets containers reach each other, every service of the
host, the host's other networks and the cloud metadata service (which hands
out the host's credentials). Sandboxes with network get a bridge of their own
instead, with inter-container traffic off and no IPv6, and chains of ours at
the top of the host's filter table (see host_firewall):

- INPUT: nothing from the bridge to the host itself, but replies;
- FORWARD: nothing to private, shared (CGNAT), link-local and other special
  ranges, which hold the host's neighbours and every cloud's metadata address
  (``DROPPED_BY_DEFAULT``), nor to ``security.egress_deny``; ``egress_allow``
  is matched first and opens holes in both. DNS to the host's resolvers goes
  through, since Docker's embedded DNS sends the sandboxes' queries from
  their own network;
- ip6tables, where the host has IPv6: nothing in from the bridge at all, in
  case a Docker leaves IPv6 on inside containers.

The egress lists are part of the bridge's identity: a server with other lists
gets another bridge (``sk-<hash>``), so two servers on one host never rewrite
each other's rules. The rules are checked before every network sandbox starts
(one ``iptables-save``), so a flushed chain, a restarted dockerd or an ACCEPT
put ahead of ours is repaired before the next sandbox goes online.

The rules need root and iptables on the host, as Docker itself does. When they
cannot be set, network sessions are refused: an isolated sandbox with a hole
in it is worse than none.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from .errors import FirewallError
from .errors import NetworkIsolationError as NetworkIsolationError  # re-exported: callers import it from here
from .host_firewall import CHAIN_PREFIX, Firewall, Hook

NETWORK_NAME = "sandkasten-net"  # the network and bridge of the default policy (no egress lists)
BRIDGE_NAME = "sk-br0"

# Where a sandbox may not go unless security.egress_allow says so, and why.
DROPPED_BY_DEFAULT: dict[str, str] = {
    "0.0.0.0/8": "'this network'",
    "10.0.0.0/8": "private",
    "100.64.0.0/10": "shared address space (carrier-grade NAT); Alibaba Cloud's metadata at 100.100.100.200",
    "127.0.0.0/8": "loopback",
    "168.63.129.16/32": "Azure's WireServer (host agent); DNS to it passes when it is the host's resolver",
    "169.254.0.0/16": "link-local: the metadata service of AWS, GCP, Azure, OpenStack, ... (169.254.169.254)",
    "172.16.0.0/12": "private",
    "192.0.0.0/24": "IETF protocol assignments; Oracle Cloud's metadata at 192.0.0.192",
    "192.168.0.0/16": "private",
    "224.0.0.0/4": "multicast",
    "240.0.0.0/4": "reserved, and the broadcast address",
}
RESOLV_CONFS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")
DOCKER_DAEMON_JSON = "/etc/docker/daemon.json"

_lock = threading.Lock()


@dataclass(frozen=True)
class EgressPolicy:
    """security.egress_allow and egress_deny, as IPv4 networks sorted and without repeats."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @classmethod
    def of(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> EgressPolicy:
        """The policy for the CIDR lists ``allow`` and ``deny``, normalized: equal lists give one network."""

        def normal(cidrs: Iterable[str]) -> tuple[str, ...]:
            networks = {ipaddress.IPv4Network(cidr) for cidr in cidrs}
            return tuple(str(network) for network in sorted(networks))

        return cls(normal(allow), normal(deny))

    @property
    def _tag(self) -> str:
        if not self.allow and not self.deny:
            return ""
        return hashlib.sha256(json.dumps([self.allow, self.deny]).encode()).hexdigest()[:8]

    @property
    def network(self) -> str:
        """The Docker network's name: ``sandkasten-net``, with a hash of the lists when there are any."""
        return NETWORK_NAME + ("-" + self._tag if self._tag else "")

    @property
    def bridge(self) -> str:
        """At most 15 bytes (IFNAMSIZ), so that our chains' names stay within iptables' 28."""
        return "sk-" + self._tag if self._tag else BRIDGE_NAME


def ensure_sandbox_network(client: docker.DockerClient, policy: EgressPolicy | None = None) -> str:
    """Make sure the policy's bridge and its host rules are in place; return the network's name.

    Called before every sandbox with network starts: cheap when all is in place.
    """
    policy = policy or EgressPolicy()
    with _lock:
        _ensure_bridge(client, policy)
        try:
            Firewall().ensure(_ipv4_hooks(policy, host_resolvers()))
            ipv6 = Firewall(ipv6=True)
            if _has_ipv6() and ipv6.available():  # without ip6tables: no IPv6 on the bridge, none inside
                ipv6.ensure(_ipv6_hooks(policy))
        except FirewallError as exc:
            raise NetworkIsolationError(
                "the host's firewall rules that keep sandboxes off the host and its networks could not be set, "
                "so sessions with network are refused: %s" % exc
            ) from None
    return policy.network


def remove_sandbox_network(client: docker.DockerClient, policy: EgressPolicy | None = None) -> None:
    """Remove the policy's network and its host rules (its sandboxes must be gone)."""
    policy = policy or EgressPolicy()
    with _lock:
        try:
            client.networks.get(policy.network).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise NetworkIsolationError("docker could not remove %s: %s" % (policy.network, exc.explanation)) from None
        try:
            Firewall().remove(_ipv4_hooks(policy, ()))
            if Firewall(ipv6=True).available():
                Firewall(ipv6=True).remove(_ipv6_hooks(policy))
        except FirewallError as exc:
            raise NetworkIsolationError(str(exc)) from None


def _ipv4_hooks(policy: EgressPolicy, resolvers: Iterable[str]) -> list[Hook]:
    forward: list[tuple[str, ...]] = [("-d", cidr, "-j", "RETURN") for cidr in policy.allow]
    for resolver in resolvers:
        forward += [("-d", resolver + "/32", "-p", proto, "--dport", "53", "-j", "RETURN") for proto in ("udp", "tcp")]
    forward += [("-d", cidr, "-j", "DROP") for cidr in (*DROPPED_BY_DEFAULT, *policy.deny)]
    # Replies to connections the host made are fine; nothing the sandbox starts is.
    replies = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")
    return [
        Hook("INPUT", policy.bridge, CHAIN_PREFIX + "IN-" + policy.bridge, (replies, ("-j", "DROP"))),
        Hook("FORWARD", policy.bridge, CHAIN_PREFIX + "FWD-" + policy.bridge, tuple(forward)),
    ]


def _ipv6_hooks(policy: EgressPolicy) -> list[Hook]:
    """Nothing in from the bridge over IPv6, to the host or through it, should a Docker leave IPv6 on inside."""
    drop = (("-j", "DROP"),)
    return [
        Hook("INPUT", policy.bridge, CHAIN_PREFIX + "IN-" + policy.bridge, drop),
        Hook("FORWARD", policy.bridge, CHAIN_PREFIX + "FWD-" + policy.bridge, drop),
    ]


def _has_ipv6() -> bool:
    return os.path.exists("/proc/net/if_inet6")


def host_resolvers(include_loopback: bool = False) -> tuple[str, ...]:
    """The IPv4 name servers Docker's embedded DNS forwards to: the host's, or those of daemon.json's "dns".

    Loopback ones only with ``include_loopback``: a sandbox never reaches them, a host process (the proxy) does.
    """
    found: set[str] = set()
    for path in RESOLV_CONFS:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                found.update(line.split()[1] for line in f if line.startswith("nameserver") and len(line.split()) > 1)
        except OSError:
            continue
    try:
        with open(DOCKER_DAEMON_JSON, encoding="utf-8") as f:
            configured = json.load(f).get("dns", [])
        found.update(address for address in configured if isinstance(address, str))
    except (OSError, ValueError, AttributeError):
        pass
    resolvers = set()
    for address in found:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            continue
        if ip.version == 4 and (include_loopback or not ip.is_loopback) and not ip.is_unspecified:
            resolvers.add(str(ip))
    return tuple(sorted(resolvers))


def _ensure_bridge(client: docker.DockerClient, policy: EgressPolicy) -> None:
    ensure_bridge(client, policy.network, policy.bridge, lambda attrs: _check_bridge(attrs, policy), "")


def ensure_bridge(
    client: docker.DockerClient,
    name: str,
    bridge: str,
    check: Callable[[dict[str, Any]], None],
    hint: str,
    **create: Any,
) -> None:
    """The Docker network ``name`` on the bridge ``bridge``, inter-container traffic off and no IPv6: made if
    missing (with ``create``'s other options), else ``check``-ed. ``hint`` follows a failure's message."""
    try:
        existing = client.networks.get(name)
    except docker.errors.NotFound:
        existing = None
    if existing is not None:
        check(existing.attrs)
        return
    try:
        client.networks.create(
            name,
            driver="bridge",
            enable_ipv6=False,
            options={
                "com.docker.network.bridge.name": bridge,
                "com.docker.network.bridge.enable_icc": "false",  # sandboxes cannot reach each other
            },
            labels={"sandkasten.network": "1"},
            **create,
        )
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # another process made it meanwhile
            raise NetworkIsolationError("docker could not create %s%s: %s" % (name, hint, exc.explanation)) from None


def _check_bridge(attrs: dict[str, Any], policy: EgressPolicy) -> None:
    """The rules name the bridge: a network of that name made otherwise would be one they do not cover."""
    options = attrs.get("Options") or {}
    made_by_us = (
        attrs.get("Driver") == "bridge"
        and options.get("com.docker.network.bridge.name") == policy.bridge
        and options.get("com.docker.network.bridge.enable_icc") == "false"
        and not attrs.get("EnableIPv6")
    )
    if not made_by_us:
        raise NetworkIsolationError(
            "the Docker network %s exists but is not the one sandkasten makes (bridge %s, inter-container traffic "
            "off, no IPv6), so its firewall rules would not cover it: remove it (docker network rm %s)"
            % (policy.network, policy.bridge, policy.network)
        )
