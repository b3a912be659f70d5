"""Engine fixtures: a short state dir per test, and an engine with a small base pool."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from traitlets.config import Config

from sandkasten_kernel.engine.config import Settings, load_settings
from sandkasten_kernel.engine.engine import Engine
from tests.conftest import short_tempdir


def settings_for(state_dir: str, **pool: Any) -> Settings:
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenPool.images = pool.get("images", {"base": 1})
    config.SandkastenPool.with_kernel = pool.get("with_kernel", False)
    config.SandkastenDefaults.image = "base"
    return load_settings(None, config)


@pytest.fixture
def state_dir(docker_client: Any) -> Iterator[str]:
    path = short_tempdir()
    yield path
    # Nothing a test started may outlive it: remove what is left, then say so.
    leftovers = [
        c
        for c in docker_client.containers.list(all=True, filters={"label": "sandkasten.session"})
        if c.attrs["Mounts"] and any(m.get("Source", "").startswith(path) for m in c.attrs["Mounts"])
    ]
    for container in leftovers:
        container.remove(force=True)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftovers, "containers left behind: %s" % [c.name for c in leftovers]


@pytest.fixture
async def engine(state_dir: str) -> AsyncIterator[Engine]:
    engine = Engine(settings_for(state_dir))
    await engine.start()
    yield engine
    for record in engine.list_sessions():
        await engine.destroy_session(record.id)
    await engine.close()
