"""What a new session asks to be, checked against the configuration before anything starts.

``SessionAsk`` holds ``Engine.create_session``'s arguments; ``check_ask`` turns one
into a ``CheckedAsk``: the image reference, the sandbox's limits within the
configured minima and maxima, the network (none, the open one, or a domain policy
within ``security.egress``), the named workspace and the ttl. Nothing here talks
to Docker or the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .egress_policy import DomainPolicy, session_policy
from .errors import EngineError, LimitExceeded, NotAllowed
from .sandbox_spec import SandboxLimits
from .workspace_names import WorkspaceRef, valid_name, workspace_ref

LIMIT_NAMES = ("cpus", "memory_mb", "pids")
# Below these a sandbox cannot run its runner and shell (and Docker reads 0 CPUs as "no limit").
LIMIT_MINIMA = {"cpus": 0.25, "memory_mb": 128, "pids": 32}


MAX_LABELS = 64
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 1024


@dataclass(frozen=True)
class SessionAsk:
    """What a new session is asked to be (``Engine.create_session``'s arguments)."""

    image: str | None = None
    workspace: str | None = None
    env: dict[str, str] | None = None
    limits: dict[str, Any] | None = None
    network: bool | dict[str, Any] | None = None
    ttl_s: int | None = None
    owner: str | None = None
    workspace_owner: str | None = None
    wants_kernel: bool = False
    labels: dict[str, str] | None = None
    idle_timeout_s: int | None = None


@dataclass(frozen=True)
class CheckedAsk:
    """A ``SessionAsk`` the configuration allows, resolved: what the sandbox and its record get."""

    image: str  # the full reference
    limits: SandboxLimits
    network: bool
    policy: DomainPolicy | None  # network through the filtering proxy, reaching only what it allows
    workspace: WorkspaceRef | None
    ttl_s: int
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    idle_timeout_s: int = 0

    def recorded_limits(self) -> dict[str, Any]:
        """The limits as the session's record keeps them."""
        return {name: getattr(self.limits, name) for name in LIMIT_NAMES}


def default_limits(settings: Settings) -> SandboxLimits:
    """The configured default limits, for sessions that ask for none and for the warm pool."""
    d = settings.defaults
    return SandboxLimits(cpus=d.cpus, memory_mb=d.memory_mb, pids=d.pids, tmp_mb=d.tmp_mb, workspace_mb=d.workspace_mb)


def checked_limits(settings: Settings, asked: dict[str, Any] | None) -> SandboxLimits:
    """The sandbox's limits: the defaults, with what was asked for within the minima and the configured maxima."""
    defaults = default_limits(settings)
    if not asked:
        return defaults
    unknown = set(asked) - set(LIMIT_NAMES)
    if unknown:
        raise EngineError("unknown limit %s; limits are %s" % (", ".join(sorted(unknown)), ", ".join(LIMIT_NAMES)))
    d = settings.defaults
    maxima = {"cpus": d.max_cpus, "memory_mb": d.max_memory_mb, "pids": d.max_pids}
    values: dict[str, Any] = {}
    for name, value in asked.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise EngineError("limit %s must be a number greater than 0, not %r" % (name, value))
        if value < LIMIT_MINIMA[name]:
            raise LimitExceeded("limit %s=%s is below the minimum %s" % (name, value, LIMIT_MINIMA[name]))
        if value > maxima[name]:
            raise LimitExceeded("limit %s=%s exceeds the configured maximum %s" % (name, value, maxima[name]))
        values[name] = float(value) if name == "cpus" else int(value)
    return SandboxLimits(
        cpus=values.get("cpus", defaults.cpus),
        memory_mb=values.get("memory_mb", defaults.memory_mb),
        pids=values.get("pids", defaults.pids),
        tmp_mb=defaults.tmp_mb,
        workspace_mb=defaults.workspace_mb,
    )


def domain_policy(settings: Settings, network: Any) -> DomainPolicy | None:
    """The domain policy of a session that asked for ``network``; None for none (no network, or the open one)."""
    if network is False:
        return None
    if not settings.security.allow_network:
        raise NotAllowed("network is not allowed by the configuration (security.allow_network)")
    bound = settings.security.domain_bound()
    if network is True:
        return bound
    if isinstance(network, dict):
        return session_policy(network, bound)
    raise EngineError('network must be true, false or a policy {"allow": [...], "deny": [...]}')


def check_ask(settings: Settings, state_dir: str, ask: SessionAsk) -> CheckedAsk:
    """``ask`` resolved and checked against the configuration; raises what it does not allow."""
    image = settings.resolve_image(ask.image)
    limits = checked_limits(settings, ask.limits)
    asked = settings.defaults.network if ask.network is None else ask.network
    policy = domain_policy(settings, asked)
    named: WorkspaceRef | None = None
    if ask.workspace is not None:
        if not settings.workspace.enabled:
            raise NotAllowed("named workspaces are disabled by the configuration (workspace.enabled)")
        if not valid_name(ask.workspace):
            raise EngineError("workspace names are 1-63 letters, digits, '.', '_' or '-', not %r" % ask.workspace)
        named = workspace_ref(state_dir, ask.workspace, ask.workspace_owner)
    ttl_s = settings.session.ttl_s if ask.ttl_s is None else checked_ttl(settings, ask.ttl_s)
    network = policy is not None or asked is True
    idle_timeout_s = checked_idle_timeout(settings, ask.idle_timeout_s, ttl_s)
    labels = checked_labels(ask.labels)
    return CheckedAsk(image, limits, network, policy, named, ttl_s, dict(ask.env or {}), labels, idle_timeout_s)


def checked_ttl(settings: Settings, ttl_s: int) -> int:
    """A session's ttl within ``session.ttl_s`` (0 there: no bound)."""
    most = settings.session.ttl_s
    if ttl_s < 0 or (most and ttl_s > most):
        raise LimitExceeded("ttl_s must be between 0 and %d (session.ttl_s)" % most)
    return ttl_s


def checked_idle_timeout(settings: Settings, asked: int | None, ttl_s: int) -> int:
    """The session's idle timeout: the configured one, or a shorter one; 0 (none) only under a ttl,
    so that something still ends the session."""
    configured = settings.session.idle_timeout_s
    if asked is None:
        return configured
    if asked < 0 or (configured and asked > configured) or (asked == 0 and configured and not ttl_s):
        raise LimitExceeded(
            "idle_timeout_s must be between 1 and %d (session.idle_timeout_s), or 0 with a ttl" % configured
        )
    return asked


def checked_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """A session's labels: the caller's own names for it, bounded so a listing stays cheap."""
    labels = dict(labels or {})
    if len(labels) > MAX_LABELS:
        raise LimitExceeded("a session has at most %d labels" % MAX_LABELS)
    for key, value in labels.items():
        if not (isinstance(key, str) and isinstance(value, str)) or not 0 < len(key) <= MAX_LABEL_KEY:
            raise EngineError("labels map names of 1-%d characters to strings" % MAX_LABEL_KEY)
        if len(value) > MAX_LABEL_VALUE:
            raise LimitExceeded("the value of label %r is longer than %d characters" % (key, MAX_LABEL_VALUE))
    return labels
