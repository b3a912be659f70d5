"""Faults: each test runs its own ``sandkasten serve`` (it kills, locks or starves it), torn down clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from sandkasten_server.launcher import Served
from tests.conftest import serving

pytestmark = pytest.mark.docker

BASE_CONFIG: dict[str, Any] = {
    "pool": {"images": {"python": 1}, "with_kernel": False},
    "quota": {"max_sessions": 60, "max_sessions_per_user": 60},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A dockerd restart stops every container on the machine: that test goes last of all."""
    items.sort(key=lambda item: item.get_closest_marker("restarts_docker") is not None)


@pytest.fixture
def start_server(docker_client: Any) -> Iterator[Callable[..., Served]]:
    """``start_server(**config)`` -> a running server; at the end every one is stopped and nothing is left."""
    with ExitStack() as servers:

        def start(**config: Any) -> Served:
            # These tests kill their servers, and a killed server leaves its sandboxes by design:
            # remove them rather than fail.
            return servers.enter_context(serving(docker_client, {**BASE_CONFIG, **config}, remove_leftovers=True))

        yield start
