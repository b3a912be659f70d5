"""The adaptive warm pool: misses raise an image's target up to its ceiling, quiet lowers it to its floor."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from traitlets.config import Config

from sandkasten_kernel.engine.config import load_settings
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import EngineError
from sandkasten_kernel.engine.pool_demand import Demand, PoolSize

BASE = "sandkasten/runtime:base"


class Clock:
    """Time that moves only when the test says (the shrink period is minutes long)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_misses_raise_the_target_to_the_ceiling_and_quiet_brings_it_back() -> None:
    clock = Clock()
    demand = Demand(PoolSize(2, 10), shrink_after_s=300, clock=clock)
    assert demand.target == 2
    demand.claimed(ready_left=1)
    assert demand.target == 2  # a claim that leaves one ready is no pressure
    demand.claimed(ready_left=0)
    for _ in range(20):
        demand.missed()
    assert demand.target == 10
    clock.now += 299
    assert not demand.settle() and demand.target == 10
    clock.now += 1
    assert demand.settle() and demand.target == 6  # halfway back to the floor
    assert not demand.settle()  # the next step comes a whole period later
    for target in (4, 3, 2):
        clock.now += 300
        assert demand.settle() and demand.target == target
    clock.now += 300
    assert not demand.settle() and demand.target == 2


def test_a_plain_count_is_fixed_and_a_resize_moves_the_target_into_range() -> None:
    fixed = Demand(PoolSize.parse(3), shrink_after_s=1)
    fixed.missed()
    assert not PoolSize.parse(3).adaptive and fixed.target == 3
    adaptive = Demand(PoolSize.parse({"min": 1, "max": 8}), shrink_after_s=1)
    for _ in range(6):
        adaptive.missed()
    adaptive.resize(PoolSize(0, 4))
    assert adaptive.target == 4
    adaptive.resize(PoolSize(5, 9))
    assert adaptive.target == 5


@pytest.mark.parametrize(
    ("value", "message"),
    [({"min": 3, "max": 1}, "below min"), ({"max": 3}, "give {min"), (-1, "whole number"), (True, "whole number")],
)
def test_bad_sizes_say_what_is_wrong(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PoolSize.parse(value)


async def _until(engine: Engine, wanted: Any, timeout_s: float = 90.0, image: str = BASE) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for _ in range(int(timeout_s / 0.1)):
        status = engine.pool_status()["images"].get(image, {})
        if wanted(status):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError("the pool never got there: %s" % status)


async def test_a_burst_grows_the_pool_and_quiet_shrinks_it_again(state_dir: str) -> None:
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenDefaults.image = "base"
    config.SandkastenPool.images = {"base": {"min": 1, "max": 4}}
    config.SandkastenPool.with_kernel = False
    config.SandkastenPool.shrink_after_s = 3.0
    engine = Engine(load_settings(None, config))
    await engine.start()
    try:
        await _until(engine, lambda s: s["ready"] == 1)
        burst = await asyncio.gather(*(engine.create_session() for _ in range(4)))
        assert sum(record.warm for record in burst) == 1  # one warm, three cold: the misses
        grown = await _until(engine, lambda s: s["ready"] == 4)
        assert grown["target"] == 4 and grown["misses"] == 3 and (grown["min"], grown["max"]) == (1, 4)
        again = await asyncio.gather(*(engine.create_session() for _ in range(4)))
        assert all(record.warm for record in again)  # the next burst of that size finds them ready
        for record in burst + again:
            await engine.destroy_session(record.id)
        # Quiet from here: after each period the target falls halfway back to the floor, and the surplus goes.
        shrunk = await _until(engine, lambda s: s["target"] == 1 and s["ready"] == 1, timeout_s=60)
        assert shrunk["starting"] == 0
        with pytest.raises(EngineError, match="below min"):
            await engine.resize_pool("base", {"min": 2, "max": 1})
        await engine.resize_pool("base", 0)
        assert engine.pool_status()["images"][BASE]["ready"] == 0
    finally:
        await engine.close()


async def test_the_floor_has_kernels_the_surplus_is_bare_and_claims_take_the_kind_they_want(state_dir: str) -> None:
    python = "sandkasten/runtime:python"
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenPool.images = {"python": {"min": 1, "max": 2}}
    engine = Engine(load_settings(None, config))
    await engine.start()
    try:
        await _until(engine, lambda s: s["ready"] == 1, 120, python)
        burst = [await engine.create_session(wants_kernel=True), await engine.create_session()]
        assert [record.warm for record in burst] == [True, False]  # the miss raised the target to 2
        status = await _until(engine, lambda s: s["ready"] == 2 and not s["starting"], 120, python)
        assert status["ready_with_kernel"] == 1  # the floor's one; the surplus one is bare
        shell = await engine.create_session()  # a plain create: the bare one first
        notebook = await engine.create_session(wants_kernel=True)
        assert shell.warm and notebook.warm
        assert not (await engine.kernel_status(shell.id))["alive"]
        assert (await engine.kernel_status(notebook.id))["alive"]
        await engine.start_kernel(shell.id)  # started when first used
        assert (await engine.kernel_status(shell.id))["alive"]
        for record in [*burst, shell, notebook]:
            await engine.destroy_session(record.id)
    finally:
        await engine.close()


async def test_refills_wait_while_sessions_start_cold(engine: Engine) -> None:
    await _until(engine, lambda s: s["ready"] == 1)
    async with engine._cold_starts.slot(0, 0):  # a session starting cold, as a create holds it
        await engine.resize_pool("base", 2)
        await asyncio.sleep(1.0)
        held = engine.pool_status()["images"][BASE]
        assert held["target"] == 2 and held["ready"] == 1 and held["starting"] == 0
    await _until(engine, lambda s: s["ready"] == 2)
