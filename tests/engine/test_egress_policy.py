"""Domain policies: the configured bound, and what a session may ask for within it (no Docker needed)."""

from __future__ import annotations

import pytest

from sandkasten_kernel.engine.config import ConfigError, settings_from, yaml_to_config
from sandkasten_kernel.engine.egress_policy import DomainPolicy, session_policy
from sandkasten_kernel.engine.errors import EngineError, NotAllowed

BOUND = DomainPolicy(("pypi.org", "*.pythonhosted.org", "10.20.0.0/16"), ("evil.pythonhosted.org",))


def test_a_session_narrows_the_bound_and_keeps_its_denials() -> None:
    asked = {"allow": ["files.pythonhosted.org", "10.20.1.0/24"], "deny": ["pypi.org"]}
    policy = session_policy(asked, BOUND)
    assert policy.allow == ("files.pythonhosted.org", "10.20.1.0/24")
    assert policy.deny == ("evil.pythonhosted.org", "pypi.org")
    inherited = session_policy({"deny": ["pypi.org"]}, BOUND)  # no allow of its own: the bound's
    assert inherited.allow == BOUND.allow


@pytest.mark.parametrize(
    ("asked", "named"),
    [
        ({"allow": ["github.com"]}, "github.com"),
        ({"allow": ["*.org"]}, "*.org"),  # wider than pypi.org
        ({"allow": ["pythonhosted.org"]}, "pythonhosted.org"),  # *.x covers subdomains, never x itself
        ({"allow": ["evil.pythonhosted.org"]}, "evil.pythonhosted.org"),  # denied by the bound
        ({"allow": ["10.0.0.0/8"]}, "10.0.0.0/8"),
    ],
)
def test_a_session_cannot_widen_the_bound(asked: dict[str, list[str]], named: str) -> None:
    with pytest.raises(NotAllowed, match=named.replace("*", r"\*").replace(".", r"\.")):
        session_policy(asked, BOUND)


@pytest.mark.parametrize(
    "asked",
    [
        {"allow": ["https://pypi.org/simple"]},
        {"allow": "pypi.org"},
        {"allow": ["*"]},
        {"allow": ["pypi.org"], "ports": [443]},
        {"allow": []},
        ["pypi.org"],
    ],
)
def test_malformed_policies_are_bad_requests(asked: object) -> None:
    with pytest.raises(EngineError) as refused:
        session_policy(asked, None)  # type: ignore[arg-type]
    assert not isinstance(refused.value, NotAllowed)


def test_without_a_bound_any_wellformed_policy_goes() -> None:
    assert session_policy({"allow": ["Example.ORG."]}, None) == DomainPolicy(("example.org",), ())


def test_security_egress_is_checked_and_normalized() -> None:
    settings = settings_from(yaml_to_config({"security": {"egress": {"allow": ["PyPI.org"]}}}, "t"))
    assert settings.security.egress == {"allow": ["pypi.org"], "deny": []}
    assert settings.security.domain_bound() == DomainPolicy(("pypi.org",), ())
    assert settings_from(yaml_to_config({}, "t")).security.domain_bound() is None
    for bad, says in [
        ({"allow": ["pypi.org/simple"]}, "security.egress"),
        ({"allow": ["pypi.org"], "block": []}, "unknown key block"),
        ({"deny": ["pypi.org"]}, "allows nothing"),
    ]:
        with pytest.raises(ConfigError, match=says):
            settings_from(yaml_to_config({"security": {"egress": bad}}, "t"))
    with pytest.raises(ConfigError, match="egress_subnet"):
        settings_from(yaml_to_config({"security": {"egress_subnet": "10.0.0.0/30"}}, "t"))
