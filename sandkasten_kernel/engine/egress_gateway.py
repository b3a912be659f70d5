"""Sessions with a domain policy: the proxy and network they go out through, their addresses, their refusals.

The proxy (``egress_proxy``) knows a sandbox by its address on the internal
network (``egress_network``), so an address is handed out, and its policy
written, before the sandbox starts; the store keeps both with the session, and
the policies are rewritten from the store whenever a session comes or goes (and
at start, which drops those of sessions that went while the server was down).
The proxy outlives the server: a restart adopts it, and the sandboxes' policies
hold meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import os
import threading
import time

import docker

from .config import SandkastenSecurity
from .egress_log import Refusal
from .egress_network import PROXY_PORT, EgressNetwork, ensure_egress_network
from .egress_policy import DomainPolicy
from .egress_proxy import EgressProxy, SessionEgress
from .errors import EngineError
from .sandbox_network import DROPPED_BY_DEFAULT
from .sandbox_spec import EgressAttachment
from .store import SessionRecord, Store

log = logging.getLogger("sandkasten.engine")
# The proxy's files: outside the state directory, whose parents (a home, a test's temp dir) the proxy's user
# may not be let through; one folder per state directory, so two servers never share a proxy.
EGRESS_ROOT = "/run/sandkasten"
# Events per session per drain of the proxy's log: the count is exact, the events a sample of the distinct ones.
EVENTS_PER_DRAIN = 20
# The proxy's log is rotated (one old file kept) once it holds this much: at most about twice it on the host.
LOG_ROTATE_BYTES = 16 << 20
# An address let go is not handed out again for this long: its container may still be on its way out.
ADDRESS_QUARANTINE_S = 120.0


def egress_dir(state_dir: str) -> str:
    """Where the proxy of ``state_dir``'s sessions keeps its configuration, policies and logs."""
    tag = hashlib.sha256(os.path.realpath(state_dir).encode()).hexdigest()[:12]
    return os.path.join(EGRESS_ROOT, "egress-" + tag)


class EgressGateway:
    """Hands out places on the proxy's network, keeps the proxy's policies in step with the store."""

    def __init__(self, state_dir: str, security: SandkastenSecurity, client: docker.DockerClient, store: Store) -> None:
        self.network = EgressNetwork(security.egress_subnet)
        self.security = security
        self.client = client
        self.store = store
        self.proxy = EgressProxy(
            egress_dir(state_dir),
            self.network.gateway,
            PROXY_PORT,
            blocked_cidrs=[*DROPPED_BY_DEFAULT, *security.egress_deny],
            opened_cidrs=list(security.egress_allow),
        )
        self._lock = threading.Lock()
        self._pending: dict[str, SessionEgress] = {}  # address -> policy of sandboxes starting
        self._written: set[str] = set()  # the addresses of the policies last written
        self._let_go: dict[str, float] = {}  # address -> when its policy went (monotonic)
        self._ready = False

    def _make_ready(self) -> None:
        """The proxy running and the network with its rules in place (checked again before every sandbox)."""
        os.makedirs(EGRESS_ROOT, mode=0o755, exist_ok=True)
        # The network first: the proxy listens on its gateway, an address the host has once the bridge exists.
        ensure_egress_network(
            self.client, self.network, self.proxy.proxy_uid(), self.proxy.blocked_cidrs, self.proxy.opened_cidrs
        )
        self.proxy.ensure_running()
        self._ready = True

    async def attach(self, session_id: str, policy: DomainPolicy) -> EgressAttachment:
        """A place for a new sandbox, its policy in force before it starts; ``settle`` it once the store has it."""
        await asyncio.to_thread(self._make_ready)
        with self._lock:
            now = time.monotonic()
            self._let_go = {ip: at for ip, at in self._let_go.items() if now - at < ADDRESS_QUARANTINE_S}
            address = self.network.allocate([*self.store.egress_ips(), *self._pending, *self._let_go])
            self._pending[address] = SessionEgress(session_id, policy.allow, policy.deny)
        try:
            await asyncio.to_thread(self.sync)
        except BaseException:
            self.settle(address)
            raise
        return EgressAttachment(
            network=self.network.name,
            ip=address,
            proxy="http://%s:%d" % (self.network.gateway, PROXY_PORT),
            gateway=self.network.gateway,
            resolv_conf=self.proxy.resolv_conf,
        )

    def settle(self, address: str) -> None:
        """The sandbox at ``address`` is in the store now, or never started: it is no longer pending."""
        with self._lock:
            self._pending.pop(address, None)
        self.sync()

    def sync(self) -> None:
        """Write the policies of the store's sessions and the pending ones; the others' go."""
        if not self._ready:
            return
        with self._lock:
            policies = dict(self._pending)
        for record in self.store.list_sessions():
            if record.egress_ip and record.egress:
                policies[record.egress_ip] = SessionEgress(
                    record.id, tuple(record.egress["allow"]), tuple(record.egress["deny"])
                )
        self.proxy.set_policies(policies)
        with self._lock:
            now = time.monotonic()
            self._let_go.update({address: now for address in self._written - policies.keys()})
            self._written = set(policies)

    def resume(self, records: list[SessionRecord]) -> None:
        """At start: where sessions with a policy live on, adopt (or restart) the proxy and rewrite the policies."""
        if any(record.egress_ip for record in records):
            try:
                self._make_ready()
            except EngineError as exc:  # their connections fail (closed) until a new session brings it back
                log.error("the egress proxy could not be started for the sessions with a domain policy: %s", exc)
                return
            self.sync()

    def note_refusals(self) -> None:
        """Count what the proxy refused since the last call, per session, with an event per distinct refusal."""
        if not self._ready:
            return
        known = {record.id for record in self.store.list_sessions()}
        by_session: dict[str, list[Refusal]] = collections.defaultdict(list)
        for refusal in self._all_refusals():
            if refusal.session_id in known:  # not a line naming no session, or one gone since
                by_session[refusal.session_id].append(refusal)
        self.proxy.rotate_logs_over(LOG_ROTATE_BYTES)  # read to here first: the reader finishes the old file
        for session_id, refusals in by_session.items():
            distinct = {(r.destination, r.method, r.rule): r for r in refusals}
            events = [
                {"destination": r.destination, "method": r.method, "rule": r.rule}
                for r in list(distinct.values())[:EVENTS_PER_DRAIN]
            ]
            try:
                self.store.add_egress_refusals(session_id, len(refusals), events)
            except EngineError as exc:
                log.warning("could not record the egress refusals of session %s: %s", session_id, exc)

    def _all_refusals(self, rounds: int = 16) -> list[Refusal]:
        """What the log holds since the last call, a bounded piece at a time (a flood waits for the next call)."""
        found: list[Refusal] = []
        for _ in range(rounds):
            found += self.proxy.refusals()
            if self.proxy.refusals_caught_up:
                break
        return found

    def close(self) -> None:
        """At the close of the engine that used it: the proxy stops unless sessions with a policy live on."""
        if self._ready and not any(record.egress_ip for record in self.store.list_sessions()):
            self.proxy.stop()
