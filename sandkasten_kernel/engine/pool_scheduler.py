"""Applies ``pool.schedule`` (``pool_schedule``) to the warm pool, as the clock says.

At start-up the pool begins with the sizes that hold now (the entry that fired
last within a week, over ``pool.images``), so a server restarted in the middle
of a class fills up for it rather than for the quiet hours. A background task
then wakes just after each minute boundary of ``clock`` (wall-clock time,
which tests replace) and applies the entry that fired since it last looked:
the images it names, and those the previous entry named, get their scheduled
sizes with their targets set to the new floors, so the pool is full when the
class starts and gives its surplus back when the class ends, not a shrink
period later. A resize through the API holds until the next firing; a change
to the configuration (``reload``) moves each target into the sizes that hold
under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from .config import Settings
from .errors import EngineError
from .pool_demand import PoolSize
from .pool_schedule import LOOK_AHEAD_S, LOOK_BACK_S, MINUTE_S, Firing, Schedule, minute_of, scheduled_size

log = logging.getLogger("sandkasten.pool")
BOUNDARY_SLACK_S = 0.05  # wake this long after a minute boundary, so the clock reads the new minute
NO_POOL = PoolSize(0, 0)


class SizedPool(Protocol):
    """What the scheduler needs of the pool (``WarmPool``): to start it with sizes, and to resize an image."""

    def start(self, sizes: dict[str, PoolSize]) -> None: ...

    async def resize(self, image: str, size: PoolSize, reset: bool = False) -> None: ...


def scheduled_sizes(settings: Settings, firing: Firing | None) -> dict[str, PoolSize]:
    """Each image's size (by reference) while ``firing``'s entry holds: ``pool.images``, with the entry's over it."""
    configured = settings.pool_sizes()
    sizes = dict(configured)
    if firing is not None:
        for name, value in firing.entry.images.items():
            image = settings.resolve_image(name)
            sizes[image] = scheduled_size(value, configured.get(image))
    return sizes


class PoolScheduler:
    """Keeps the warm pool's sizes to ``pool.schedule``: the configured sizes, with the current entry's over them."""

    def __init__(self, pool: SizedPool, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._pool = pool
        self._settings = settings
        self.clock = clock  # wall-clock seconds since the epoch; tests move their own
        self.poll_s = float(MINUTE_S)  # the longest sleep between looks (shorter for a test's clock)
        self.on_fire: Callable[[Firing], None] = lambda firing: None  # the engine records an event
        self.schedule = settings.pool_schedule()
        self._current: Firing | None = None
        self._next: Firing | None = None
        self._ahead_to = 0  # the last minute the search for the next firing has covered
        self._looked_at = 0  # the last minute whose firings have been applied
        self._applied: dict[str, PoolSize] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the pool with the sizes that hold now, and follow the schedule from here in the background."""
        now = self.clock()
        self._looked_at = minute_of(now)
        self._current = self.schedule.latest(now, now - LOOK_BACK_S)
        self._applied = scheduled_sizes(self._settings, self._current)
        self._pool.start(self._applied)
        self._look_ahead(now)
        self._task = asyncio.create_task(self._follow(), name="sandkasten-pool-schedule")

    async def close(self) -> None:
        """Stop following the schedule (the pool keeps the sizes it has)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def reload(self) -> None:
        """Take up a change of ``pool.images``, ``pool.schedule`` or ``pool.schedule_timezone``: the entry that
        holds now under the new schedule, each image's target moved into its new size (not reset to the floor:
        nothing fired)."""
        self.schedule = self._settings.pool_schedule()
        now = self.clock()
        self._current = self.schedule.latest(now, now - LOOK_BACK_S)
        self._next, self._ahead_to = None, 0
        self._look_ahead(now)
        await self._apply(reset=set())

    async def tick(self) -> None:
        """Apply the entry that fired since the last look (the latest, if the loop slept through several)."""
        now = self.clock()
        minute = minute_of(now)
        if minute <= self._looked_at:
            return
        fired = self.schedule.latest(now, max(self._looked_at, minute - LOOK_BACK_S))
        self._looked_at = minute
        if fired is not None:
            named = set(fired.entry.images) | (set(self._current.entry.images) if self._current else set())
            self._current = fired
            log.info("pool schedule: entry %d (%s) fired: %s", fired.entry.index, fired.entry.cron.text, named)
            await self._apply(reset={self._settings.resolve_image(name) for name in named})
            self.on_fire(fired)
        self._look_ahead(now)

    async def _apply(self, reset: set[str]) -> None:
        """Resize every image whose size the schedule or configuration sets now, or set before (to 0 if no more)."""
        sizes = scheduled_sizes(self._settings, self._current)
        for image in sorted(self._applied.keys() | sizes.keys()):
            await self._pool.resize(image, sizes.get(image, NO_POOL), reset=image in reset)
        self._applied = sizes

    def _look_ahead(self, now: float) -> None:
        """Find the next firing: afresh once the one found has come, else only through the minutes new since the
        last search found none (an entry may fire less often than weekly)."""
        minute = minute_of(now)
        if self._next is not None and self._next.at > minute:
            return
        start = minute + MINUTE_S if self._next is not None else max(minute, self._ahead_to) + MINUTE_S
        self._next = self.schedule.first(start, minute + LOOK_AHEAD_S)
        self._ahead_to = minute + LOOK_AHEAD_S

    async def _follow(self) -> None:
        while True:
            until_boundary = MINUTE_S - self.clock() % MINUTE_S + BOUNDARY_SLACK_S
            await asyncio.sleep(min(self.poll_s, until_boundary))
            try:
                await self.tick()
            except EngineError as exc:  # an image the configuration no longer allows: the next firing may do
                log.error("pool schedule: could not apply an entry: %s", exc)
            except Exception:  # a bug must not end the schedule before the next class: say so, go on
                log.exception("pool schedule: applying an entry failed")

    def status(self) -> dict[str, Any] | None:
        """The schedule's time zone, the entry that holds now and the next change, for the pool's status
        (None without a schedule). Without a pool to follow it for, what would hold now."""
        if self._task is None:
            return describe_schedule(self.schedule, *schedule_now(self.schedule, self.clock()))
        return describe_schedule(self.schedule, self._current, self._next)


def schedule_now(schedule: Schedule, now: float) -> tuple[Firing | None, Firing | None]:
    """The entry that holds at ``now`` (fired within the last week) and the next change (within a week)."""
    return schedule.latest(now, now - LOOK_BACK_S), schedule.first(now + MINUTE_S, now + LOOK_AHEAD_S)


def describe_schedule(schedule: Schedule, current: Firing | None, upcoming: Firing | None) -> dict[str, Any] | None:
    """The schedule's time zone, ``current`` and ``upcoming`` as ``GET pool`` and ``sandkasten pool status``
    show them (None without entries)."""
    if not schedule.entries:
        return None
    return {
        "timezone": schedule.zone_name,
        "current": {**current.entry.describe(), "since": current.at} if current else None,
        "next": {**upcoming.entry.describe(), "at": upcoming.at} if upcoming else None,
    }
