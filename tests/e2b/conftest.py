"""E2B's own SDKs (PyPI ``e2b``, ``e2b-code-interpreter``; npm ``e2b``) against a real ``sandkasten serve``.

The SDKs find the server through their own environment variables, as a user
switching to Sandkasten would set them (docs/e2b.md).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker


def e2b_environment(server: Served) -> dict[str, str]:
    """The variables that point E2B's SDKs at ``server``."""
    return {
        "E2B_API_URL": server.base_url + "/e2b",
        "E2B_SANDBOX_URL": server.base_url + "/e2b/sandbox",
        "E2B_API_KEY": server.api_key,
    }


@pytest.fixture
def e2b_env(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """E2B's SDKs pointed at the shared server for the test."""
    environment = e2b_environment(served)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    yield environment
