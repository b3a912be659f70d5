"""pool.schedule: the cron matcher, which entry holds when, the sizes it sets, config errors, and a real pool
following it.

Every clock here is the test's own (2026-11-30 is a Monday): no test waits for a minute to pass.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from traitlets.config import Config

from sandkasten_kernel.engine.config import ConfigError, Settings, load_settings
from sandkasten_kernel.engine.cron import Cron
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.pool_demand import Demand, PoolSize
from sandkasten_kernel.engine.pool_schedule import Schedule, parse_schedule, scheduled_size
from sandkasten_kernel.engine.pool_scheduler import PoolScheduler
from tests.engine.test_pool_demand import BASE, _until

BERLIN = ZoneInfo("Europe/Berlin")
PYTHON = "sandkasten/runtime:python"
CLASS = [
    {"cron": "50 8 * * MON", "images": {"python": 30}},
    {"cron": "0 11 * * MON", "images": {"python": 2}},
]


Minute = tuple[int, int, int, int, int]  # year, month, day, hour, minute


def at(year: int, month: int, day: int, hour: int, minute: int, second: int = 0, zone: tzinfo = timezone.utc) -> float:
    """Seconds since the epoch of a wall-clock time in ``zone``."""
    return datetime(year, month, day, hour, minute, second, tzinfo=zone).timestamp()


# -- the cron matcher ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "when", "expected"),
    [
        ("50 8 * * MON", (2026, 11, 30, 8, 50), True),
        ("50 8 * * MON", (2026, 12, 1, 8, 50), False),  # a Tuesday
        ("50 8 * * mon", (2026, 11, 30, 8, 50), True),  # names in any case
        ("50 8 * * 1", (2026, 11, 30, 8, 51), False),
        ("*/15 * * * *", (2026, 11, 30, 3, 45), True),
        ("*/15 * * * *", (2026, 11, 30, 3, 46), False),
        ("0-30/10 9 * * *", (2026, 11, 30, 9, 30), True),
        ("0-30/10 9 * * *", (2026, 11, 30, 9, 40), False),
        ("5/20 * * * *", (2026, 11, 30, 9, 45), True),  # 5, 25, 45
        ("0 8,13 * * *", (2026, 11, 30, 13, 0), True),
        ("0 8 * * MON-FRI", (2026, 12, 4, 8, 0), True),  # a Friday
        ("0 8 * * MON-FRI", (2026, 12, 5, 8, 0), False),  # a Saturday
        ("0 8 * * 7", (2026, 12, 6, 8, 0), True),  # 7 is Sunday, as 0 is
        ("0 8 * * SUN", (2026, 12, 6, 8, 0), True),
        ("0 0 1 SEP-DEC *", (2026, 12, 1, 0, 0), True),
        ("0 0 1 JAN *", (2026, 12, 1, 0, 0), False),
        # Both day fields restricted: either matching fires (the 15th, or any Monday).
        ("0 0 15 * MON", (2026, 11, 30, 0, 0), True),
        ("0 0 15 * MON", (2026, 12, 15, 0, 0), True),
        ("0 0 15 * MON", (2026, 12, 16, 0, 0), False),
        # One of them a star (even a stepped one): both must match.
        ("0 0 */2 * MON", (2026, 11, 30, 0, 0), False),  # the 30th is not in 1, 3, .., 31
    ],
)
def test_the_matcher_reads_fields_as_vixie_cron_does(expression: str, when: Minute, expected: bool) -> None:
    assert Cron.parse(expression).matches(datetime(*when)) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 5 fields"),
        ("* * * * * *", "not 6"),
        ("60 * * * *", "minute field: 60 is out of range 0-59"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23"),
        ("0 0 0 * *", "day-of-month field: 0 is out of range 1-31"),
        ("0 0 * 13 *", "month field: 13 is out of range 1-12"),
        ("0 0 * * 8", "day-of-week field: 8 is out of range 0-7"),
        ("*/0 * * * *", "the step after / must be a whole number from 1"),
        ("30-10 * * * *", "runs backwards"),
        ("0 0 * * FUNDAY", "is not a number or a name (SUN, MON"),
        ("1,,2 * * * *", "'' is not a number"),
        ("@daily", "has 5 fields"),
    ],
)
def test_a_bad_expression_says_which_field_and_why(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        Cron.parse(expression)


# -- which entry holds when ------------------------------------------------------------------


def test_the_latest_firing_holds_and_the_next_is_found_in_the_schedules_zone() -> None:
    schedule = Schedule(parse_schedule(CLASS), BERLIN)
    monday_class = at(2026, 11, 30, 9, 30, zone=BERLIN)
    current = schedule.latest(monday_class, monday_class - 7 * 86400)
    assert current is not None and current.entry.index == 0 and current.at == at(2026, 11, 30, 8, 50, zone=BERLIN)
    upcoming = schedule.first(monday_class, monday_class + 7 * 86400)
    assert upcoming is not None and upcoming.entry.index == 1 and upcoming.at == at(2026, 11, 30, 11, 0, zone=BERLIN)
    # The same instant in UTC is 8:30: the entry of 8:50 UTC has not fired yet, last week's 11:00 holds.
    in_utc = Schedule(parse_schedule(CLASS), ZoneInfo("UTC")).latest(monday_class, monday_class - 7 * 86400)
    assert in_utc is not None and in_utc.entry.index == 1 and in_utc.at == at(2026, 11, 23, 11, 0)
    # Nothing within the look-back: none holds.
    assert schedule.latest(monday_class, monday_class - 3600) is not None
    assert schedule.latest(at(2026, 11, 30, 8, 49, zone=BERLIN), at(2026, 11, 29, 0, 0, zone=BERLIN)) is None


def test_of_two_entries_firing_together_the_later_in_the_list_wins() -> None:
    entries = parse_schedule([{"cron": "0 9 * * *", "images": {"python": 1}}, {"cron": "0 9 * * MON", "images": {}}])
    firing = Schedule(entries, None).firing(int(datetime(2026, 11, 30, 9, 0).timestamp()))
    assert firing is not None and firing.index == 1


def test_a_wall_clock_minute_that_daylight_saving_skips_never_fires() -> None:
    schedule = Schedule(parse_schedule([{"cron": "30 2 * * *", "images": {}}]), BERLIN)
    # 2026-03-29: Berlin's clocks go from 2:00 to 3:00. The next 2:30 is the day after.
    upcoming = schedule.first(at(2026, 3, 29, 0, 0, zone=BERLIN), at(2026, 4, 5, 0, 0, zone=BERLIN))
    assert upcoming is not None and upcoming.at == at(2026, 3, 30, 2, 30, zone=BERLIN)


# -- the sizes an entry sets -----------------------------------------------------------------


def test_a_scheduled_count_is_a_floor_under_the_configured_ceiling() -> None:
    assert scheduled_size(30, PoolSize(2, 32)) == PoolSize(30, 32)
    assert scheduled_size(40, PoolSize(2, 32)) == PoolSize(40, 40)
    assert scheduled_size(3, None) == PoolSize(3, 3)
    assert scheduled_size({"min": 5, "max": 6}, PoolSize(2, 32)) == PoolSize(5, 6)  # {min, max}: as written


def test_demand_raises_a_scheduled_floor_to_the_ceiling_and_quiet_brings_it_back_to_the_floor() -> None:
    now = [0.0]
    demand = Demand(PoolSize(2, 32), shrink_after_s=300, clock=lambda: now[0])
    demand.resize(scheduled_size(30, PoolSize(2, 32)), reset=True)  # the class starts
    assert demand.target == 30
    for _ in range(5):
        demand.missed()  # more students than expected
    assert demand.target == 32
    demand.resize(scheduled_size(2, PoolSize(2, 32)), reset=True)  # the class ends: given back at once
    assert demand.target == 2
    demand.missed()
    now[0] += 300
    assert demand.settle() and demand.target == 2  # back to the scheduled floor after a quiet period


# -- configuration errors --------------------------------------------------------------------


def settings(schedule: Any, zone: str = "", **pool: Any) -> Settings:
    config = Config()
    config.SandkastenPool.images = pool.get("images", {"python": {"min": 2, "max": 32}})
    config.SandkastenPool.schedule = schedule
    config.SandkastenPool.schedule_timezone = zone
    return load_settings(None, config)


@pytest.mark.parametrize(
    ("schedule", "zone", "message"),
    [
        ([{"cron": "50 25 * * MON", "images": {"python": 3}}], "", "[0] (cron '50 25 * * MON'): hour field: 25"),
        ([*CLASS, {"cron": "0 9 * * XYZ", "images": {}}], "", "[2] (cron '0 9 * * XYZ'): day-of-week field"),
        ([{"cron": "0 9 * * *", "images": {"pyhton": 3}}], "", "pool.schedule[0] (cron '0 9 * * *'): image 'pyhton'"),
        ([{"cron": "0 9 * * *", "images": {"python": -1}}], "", "[0] (cron '0 9 * * *'): pool size of 'python'"),
        ([{"cron": "0 9 * * *", "images": {"python": {"min": 3, "max": 1}}}], "", "max (1) is below min (3)"),
        ([{"cron": "0 9 * * *"}], "", "[0]: give {cron:"),
        ([{"cron": "0 9 * * *", "images": {}, "when": "now"}], "", "[0]: give {cron:"),
        ([{"cron": "0 9 * * *", "images": [1]}], "", "images must map image names to sizes"),
        ([], "Mars/Olympus", "bad value for 'pool.schedule_timezone': unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_bad_entry_is_a_config_error_naming_it(schedule: Any, zone: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings(schedule, zone)
    assert message in str(error.value)


# -- the scheduler, on a pool that only records ------------------------------------------------


class RecordingPool:
    """Stands for ``WarmPool``: the sizes it was started with and every resize since."""

    def __init__(self) -> None:
        self.started: dict[str, PoolSize] = {}
        self.resizes: list[tuple[str, PoolSize, bool]] = []

    def start(self, sizes: dict[str, PoolSize]) -> None:
        self.started = dict(sizes)

    async def resize(self, image: str, size: PoolSize, reset: bool = False) -> None:
        self.resizes.append((image, size, reset))


async def test_the_scheduler_starts_with_the_entry_that_holds_and_applies_each_as_its_minute_comes() -> None:
    now = [at(2026, 11, 30, 9, 30)]  # mid-class: the 8:50 entry fired 40 minutes ago
    pool = RecordingPool()
    scheduler = PoolScheduler(pool, settings(CLASS, "UTC"), clock=lambda: now[0])
    scheduler.start()
    try:
        assert pool.started == {PYTHON: PoolSize(30, 32)}
        status = scheduler.status()
        assert status is not None and status["timezone"] == "UTC"
        assert status["current"] == {**CLASS[0], "index": 0, "since": at(2026, 11, 30, 8, 50)}
        assert status["next"] == {**CLASS[1], "index": 1, "at": at(2026, 11, 30, 11, 0)}

        now[0] = at(2026, 11, 30, 10, 59, 59)
        await scheduler.tick()
        assert pool.resizes == []  # not yet
        now[0] = at(2026, 11, 30, 11, 0) + 0.05
        await scheduler.tick()
        assert pool.resizes == [(PYTHON, PoolSize(2, 32), True)]  # the target goes to the new floor
        status = scheduler.status()
        assert status is not None and status["current"]["index"] == 1
        assert status["next"]["at"] == at(2026, 12, 7, 8, 50)

        # A loop that slept through several firings applies the latest of them.
        pool.resizes.clear()
        now[0] = at(2026, 12, 7, 11, 30)
        await scheduler.tick()
        assert pool.resizes == [(PYTHON, PoolSize(2, 32), True)]
    finally:
        await scheduler.close()


async def test_a_config_change_moves_targets_into_the_sizes_that_hold_under_it() -> None:
    now = [at(2026, 11, 30, 9, 30)]
    live = settings([], "UTC", images={"python": 1, "base": 1})
    pool = RecordingPool()
    scheduler = PoolScheduler(pool, live, clock=lambda: now[0])
    scheduler.start()
    try:
        assert scheduler.status() is None  # no schedule
        live.pool.images = {"python": 1}
        live.pool.schedule = [{"cron": "0 8 * * *", "images": {"node": 2}}]  # fired at 8:00 today
        await scheduler.reload()
        assert sorted(pool.resizes) == [
            ("sandkasten/runtime:base", PoolSize(0, 0), False),  # no longer named: none kept
            ("sandkasten/runtime:node", PoolSize(2, 2), False),
            (PYTHON, PoolSize(1, 1), False),
        ]
    finally:
        await scheduler.close()


# -- a real engine's pool ----------------------------------------------------------------------


async def test_an_entry_resizes_a_real_pool_when_its_minute_comes(state_dir: str) -> None:
    now = [at(2026, 11, 30, 8, 59, 58)]
    config = Config()
    config.Sandkasten.state_dir = state_dir
    config.SandkastenDefaults.image = "base"
    config.SandkastenPool.images = {"base": 0}
    config.SandkastenPool.with_kernel = False
    config.SandkastenPool.schedule = [
        {"cron": "0 9 * * MON", "images": {"base": 1}},
        {"cron": "0 10 * * MON", "images": {}},
    ]
    config.SandkastenPool.schedule_timezone = "UTC"
    engine = Engine(load_settings(None, config))
    engine.pool_schedule.clock = lambda: now[0]
    engine.pool_schedule.poll_s = 0.05  # the loop looks at the test's clock often, not once a minute
    await engine.start()
    try:
        status = engine.pool_status()
        assert status["images"][BASE]["target"] == 0
        assert status["schedule"]["current"]["since"] == at(2026, 11, 23, 10, 0)  # last Monday's end of class
        assert status["schedule"]["next"]["at"] == at(2026, 11, 30, 9, 0)

        now[0] = at(2026, 11, 30, 9, 0) + 0.5  # the class starts: the loop starts a warm sandbox
        ready = await _until(engine, lambda image: image["ready"] == 1)
        assert ready["target"] == 1 and (ready["min"], ready["max"]) == (1, 1)
        assert engine.pool_status()["schedule"]["current"]["index"] == 0
        (event,) = [e for e in engine.events() if e.kind == "pool_scheduled"]
        assert event.detail["cron"] == "0 9 * * MON"

        now[0] = at(2026, 11, 30, 10, 0) + 0.5  # and ends: images {} brings pool.images (0) back
        await _until(engine, lambda image: image["target"] == 0 and image["ready"] == 0)
    finally:
        await engine.close()
