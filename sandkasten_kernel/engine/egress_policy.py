"""Domain policies: which names (and IPv4 networks) a session with network may reach.

``security.egress`` in sandkasten.yaml is the default and the outer bound; a
session's ``network: {"allow": [...], "deny": [...]}`` may narrow it, never
widen it. The entries are those of ``egress_match`` (a name, ``*.name`` for its
subdomains, or an IPv4 network); the filtering proxy applies the result
(``egress_proxy``), below the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .egress_match import covers, normalize_entry
from .errors import EngineError, NotAllowed

POLICY_KEYS = ("allow", "deny")


@dataclass(frozen=True)
class DomainPolicy:
    """What a sandbox may reach through the proxy: ``deny`` wins over ``allow``; nothing else is reached."""

    allow: tuple[str, ...]
    deny: tuple[str, ...] = ()

    def as_json(self) -> dict[str, list[str]]:
        return {"allow": list(self.allow), "deny": list(self.deny)}


def _entries(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("%s must be a list of names, *.names or IPv4 networks" % where)
    normalized: list[str] = []
    for item in value:
        try:
            entry = normalize_entry(item)
        except ValueError as exc:
            raise ValueError("%s: %s" % (where, exc)) from None
        if entry not in normalized:
            normalized.append(entry)
    return tuple(normalized)


def parse_policy(value: Any, where: str, inherited_allow: Iterable[str] = ()) -> DomainPolicy:
    """``{"allow": [...], "deny": [...]}`` as a ``DomainPolicy``; a ``ValueError`` names what is wrong.

    Without ``allow`` the policy allows ``inherited_allow`` (the bound's); a policy
    that allows nothing at all is refused, since it would be no network with extra steps.
    """
    if not isinstance(value, dict):
        raise ValueError("%s must be an object with allow and deny lists" % where)
    unknown = sorted(set(value) - set(POLICY_KEYS))
    if unknown:
        raise ValueError("%s has unknown key %s; a policy has allow and deny" % (where, ", ".join(unknown)))
    allow = _entries(value["allow"], where + ".allow") if "allow" in value else tuple(inherited_allow)
    deny = _entries(value.get("deny", []), where + ".deny")
    if not allow:
        raise ValueError("%s allows nothing: list the names it may reach in allow (or ask for no network)" % where)
    return DomainPolicy(allow, deny)


def session_policy(asked: dict[str, Any], bound: DomainPolicy | None) -> DomainPolicy:
    """The policy a session that asked for ``asked`` gets, within ``bound`` (security.egress; None: no bound).

    Every allowed entry must lie inside one of the bound's and outside its denials;
    the bound's denials hold whatever the session says. ``NotAllowed`` (403) names
    the first entry that does not fit; a malformed request is an ``EngineError`` (400).
    """
    try:
        policy = parse_policy(asked, "network", bound.allow if bound else ())
    except ValueError as exc:
        raise EngineError(str(exc)) from None
    if bound is None:
        return policy
    for entry in policy.allow:
        if not any(covers(outer, entry) for outer in bound.allow):
            raise NotAllowed(
                "network.allow: %r is outside what the configuration allows (security.egress.allow: %s)"
                % (entry, ", ".join(bound.allow))
            )
        denied = [outer for outer in bound.deny if covers(outer, entry)]
        if denied:
            raise NotAllowed(
                "network.allow: %r is denied by the configuration (security.egress.deny: %s)" % (entry, denied[0])
            )
    deny = bound.deny + tuple(entry for entry in policy.deny if entry not in bound.deny)
    return DomainPolicy(policy.allow, deny)
