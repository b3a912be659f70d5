"""The network of sandboxes with a domain policy: internal, its one way out the filtering proxy.

A Docker ``internal`` bridge has no route out: Docker drops what it would
forward and masquerades nothing. The host still has an address on it (the
gateway), where the proxy listens, and Docker does not filter what reaches the
host itself. So, in chains of ours (``host_firewall``):

- INPUT from the bridge: the proxy's port on the gateway, replies, nothing else
  (no DNS: the embedded DNS's queries leave from the sandbox's own network, to
  the gateway, and are dropped here; sandboxes get a resolv.conf pointing
  nowhere, so a lookup fails at once, and the proxy resolves names itself);
- FORWARD from the bridge: refused at once (a reset, not a timeout), whatever
  Docker's own rules say;
- OUTPUT of the proxy's user: the proxy runs on the host, where the sandboxes'
  rules do not hold, so its own connections are kept off the host's addresses
  and the ranges sandboxes may not reach (``sandbox_network.DROPPED_BY_DEFAULT``,
  ``security.egress_deny``; ``egress_allow`` opens holes), and its resolvers
  are let through;
- ip6tables: nothing in from the bridge, nothing out from the proxy's user.

Sandboxes get fixed addresses (``allocate``): the proxy tells them apart by
source address, and a policy must be in place before its sandbox starts.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import docker

from .errors import FirewallError, NetworkIsolationError
from .host_firewall import CHAIN_PREFIX, Firewall, Hook
from .sandbox_network import DROPPED_BY_DEFAULT, ensure_bridge, host_resolvers

PROXY_PORT = 3128

_lock = threading.Lock()


@dataclass(frozen=True)
class EgressNetwork:
    """The internal network on ``subnet`` (security.egress_subnet): its Docker name, bridge and gateway."""

    subnet: str

    @property
    def _tag(self) -> str:
        return hashlib.sha256(self.subnet.encode()).hexdigest()[:6]

    @property
    def name(self) -> str:
        return "sandkasten-egress-" + self._tag

    @property
    def bridge(self) -> str:
        """At most 15 bytes (IFNAMSIZ)."""
        return "sk-eg-" + self._tag

    @property
    def gateway(self) -> str:
        """The host's address on the network: where the proxy listens."""
        return str(next(ipaddress.IPv4Network(self.subnet).hosts()))

    def allocate(self, taken: Iterable[str]) -> str:
        """A free address for a new sandbox, at random, so one just let go is seldom handed out again at once."""
        used = {*taken, self.gateway}
        hosts = list(ipaddress.IPv4Network(self.subnet).hosts())
        for _ in range(64):
            candidate = str(random.choice(hosts))
            if candidate not in used:
                return candidate
        free = [str(host) for host in hosts if str(host) not in used]
        if not free:
            raise NetworkIsolationError(
                "every address of security.egress_subnet %s is taken: give it a larger network" % self.subnet
            )
        return random.choice(free)


def ensure_egress_network(
    client: docker.DockerClient,
    network: EgressNetwork,
    proxy_uid: int,
    blocked: Iterable[str],
    opened: Iterable[str],
) -> None:
    """Make sure the network and its host rules are in place (cheap when they are); before every such sandbox."""
    with _lock:
        _ensure_bridge(client, network)
        try:
            Firewall().ensure(_ipv4_hooks(network, proxy_uid, tuple(blocked), tuple(opened)))
            ipv6 = Firewall(ipv6=True)
            if ipv6.available():
                ipv6.ensure(_ipv6_hooks(network, proxy_uid))
        except FirewallError as exc:
            raise NetworkIsolationError(
                "the host's firewall rules that make the proxy the only way out could not be set, so sessions with "
                "a domain policy are refused: %s" % exc
            ) from None


def _ipv4_hooks(
    network: EgressNetwork, proxy_uid: int, blocked: tuple[str, ...], opened: tuple[str, ...]
) -> list[Hook]:
    replies = ("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
    to_proxy = ("-d", network.gateway + "/32", "-p", "tcp", "--dport", str(PROXY_PORT), "-j", "ACCEPT")
    proxy_out: list[tuple[str, ...]] = [(*replies, "-j", "RETURN")]
    for resolver in host_resolvers(include_loopback=True):
        proxy_out += [
            ("-d", resolver + "/32", "-p", proto, "--dport", "53", "-j", "RETURN") for proto in ("udp", "tcp")
        ]
    proxy_out += [("-d", cidr, "-j", "RETURN") for cidr in opened]
    proxy_out.append(("-m", "addrtype", "--dst-type", "LOCAL", "-j", "REJECT"))
    proxy_out += [("-d", cidr, "-j", "REJECT") for cidr in (*DROPPED_BY_DEFAULT, *blocked)]
    chain = CHAIN_PREFIX + "%s-" + network.bridge
    return [
        Hook("INPUT", network.bridge, chain % "IN", (to_proxy, (*replies, "-j", "ACCEPT"), ("-j", "DROP"))),
        Hook(
            "FORWARD",
            network.bridge,
            chain % "FWD",
            (("-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"), ("-j", "REJECT")),
        ),
        Hook("OUTPUT", "", chain % "OUT", tuple(proxy_out), owner_uid=proxy_uid),
    ]


def _ipv6_hooks(network: EgressNetwork, proxy_uid: int) -> list[Hook]:
    chain = CHAIN_PREFIX + "%s-" + network.bridge
    return [
        Hook("INPUT", network.bridge, chain % "IN", (("-j", "DROP"),)),
        Hook("FORWARD", network.bridge, chain % "FWD", (("-j", "DROP"),)),
        Hook("OUTPUT", "", chain % "OUT", (("-o", "lo", "-j", "RETURN"), ("-j", "REJECT")), owner_uid=proxy_uid),
    ]


def _ensure_bridge(client: docker.DockerClient, network: EgressNetwork) -> None:
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=network.subnet, gateway=network.gateway)])
    ensure_bridge(
        client,
        network.name,
        network.bridge,
        lambda attrs: _check_bridge(attrs, network),
        " on %s (security.egress_subnet; does it overlap another network?)" % network.subnet,
        internal=True,
        ipam=ipam,
    )


def _check_bridge(attrs: dict[str, Any], network: EgressNetwork) -> None:
    options = attrs.get("Options") or {}
    subnets = [config.get("Subnet") for config in (attrs.get("IPAM") or {}).get("Config") or []]
    made_by_us = (
        attrs.get("Driver") == "bridge"
        and attrs.get("Internal") is True
        and options.get("com.docker.network.bridge.name") == network.bridge
        and options.get("com.docker.network.bridge.enable_icc") == "false"
        and not attrs.get("EnableIPv6")
        and subnets == [network.subnet]
    )
    if not made_by_us:
        raise NetworkIsolationError(
            "the Docker network %s exists but is not the one sandkasten makes (internal bridge %s on %s, "
            "inter-container traffic off, no IPv6): remove it (docker network rm %s)"
            % (network.name, network.bridge, network.subnet, network.name)
        )
