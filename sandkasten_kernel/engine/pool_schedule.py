"""``pool.schedule``: warm pool sizes that follow the clock, so the pool is full when a class starts.

Each entry is a cron expression and the sizes it sets::

    schedule:
      - {cron: "50 8 * * MON", images: {python: 30}}   # ten minutes before Monday's class
      - {cron: "0 11 * * MON", images: {python: 2}}    # and back down after it

The latest entry that fired holds until the next one fires. Its sizes are
written as in ``pool.images`` and replace them for the images it names (the
others keep ``pool.images``'); a plain count is the floor while the entry
holds, and the ceiling stays ``pool.images``' when that is higher, so demand
(``pool_demand``) still grows the pool above a scheduled floor. ``{min, max}``
sets both. An entry with no images (``images: {}``) brings ``pool.images``
back.

Firings are found by looking at minutes, one by one, in the schedule's time
zone: a week back at start-up (a server started at 9:00 on Monday knows that
class began), a week ahead for the next change. Daylight saving time needs no
rule of its own: a wall-clock minute the change skips never fires, one it
repeats fires twice, to the same effect. This module decides when;
``pool_scheduler`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cron import Cron
from .pool_demand import PoolSize

MINUTE_S = 60
LOOK_BACK_S = 7 * 24 * 3600  # how far back start-up looks for the entry that holds now
LOOK_AHEAD_S = 7 * 24 * 3600  # how far ahead the next change is looked for


@dataclass(frozen=True)
class ScheduleEntry:
    """One entry of ``pool.schedule``: where it stands in the list, when it fires, the sizes it sets."""

    index: int
    cron: Cron
    images: dict[str, Any]  # image name -> a count or {min, max}, as written

    def describe(self) -> dict[str, Any]:
        """The entry as the pool's status shows it."""
        return {"index": self.index, "cron": self.cron.text, "images": dict(self.images)}


class Firing(NamedTuple):
    """An entry and the minute (seconds since the epoch) it fired or fires at."""

    entry: ScheduleEntry
    at: int


def parse_schedule(value: Any) -> list[ScheduleEntry]:
    """``pool.schedule`` as entries; ValueError naming the entry (``[index] (cron '...')``) and what is wrong."""
    if not isinstance(value, list):
        raise ValueError("give a list of {cron: '<5 fields>', images: {image: size}} entries, not %r" % (value,))
    return [_entry(index, item) for index, item in enumerate(value)]


def _entry(index: int, item: Any) -> ScheduleEntry:
    if not isinstance(item, dict) or set(item) != {"cron", "images"}:
        raise ValueError("[%d]: give {cron: '<5 fields>', images: {image: size}}, not %r" % (index, item))
    where = "[%d] (cron %r)" % (index, item["cron"])
    images = item["images"]
    if not isinstance(images, dict) or not all(isinstance(name, str) for name in images):
        raise ValueError("%s: images must map image names to sizes, not %r" % (where, images))
    try:
        cron = Cron.parse(item["cron"])
        for name, size in images.items():
            try:
                PoolSize.parse(size)
            except ValueError as exc:
                raise ValueError("pool size of %r: %s" % (name, exc)) from None
    except ValueError as exc:
        raise ValueError("%s: %s" % (where, exc)) from None
    return ScheduleEntry(index, cron, dict(images))


def time_zone(name: str) -> tzinfo | None:
    """The schedule's time zone: an IANA name's, or None for the server's local time; ValueError if unknown."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            "unknown time zone %r: give an IANA name such as Europe/Berlin, or leave it empty for the server's "
            "local time" % name
        ) from None


def scheduled_size(value: Any, configured: PoolSize | None) -> PoolSize:
    """An entry's size for an image: ``{min, max}`` as written; a count as the floor, under the
    configured ceiling (``pool.images``) when that is higher."""
    size = PoolSize.parse(value)
    if isinstance(value, dict) or configured is None:
        return size
    return PoolSize(size.min, max(size.min, configured.max))


class Schedule:
    """The entries and their time zone: which entry fired when."""

    def __init__(self, entries: list[ScheduleEntry], zone: tzinfo | None) -> None:
        self.entries = entries
        self.zone = zone

    @property
    def zone_name(self) -> str:
        """The time zone's name for the status (the local zone's abbreviation when none is configured)."""
        if self.zone is not None:
            return str(self.zone)
        return "local (%s)" % datetime.now().astimezone().tzname()

    def firing(self, minute: int) -> ScheduleEntry | None:
        """The entry that fires at ``minute`` (the last in the list, if several do), or None."""
        when = datetime.fromtimestamp(minute, self.zone)
        fired = None
        for entry in self.entries:
            if entry.cron.matches(when):
                fired = entry
        return fired

    def latest(self, now: float, after: float) -> Firing | None:
        """The latest firing at or before ``now``'s minute and after ``after``, or None."""
        if not self.entries:
            return None
        minute = minute_of(now)
        while minute > after:
            entry = self.firing(minute)
            if entry is not None:
                return Firing(entry, minute)
            minute -= MINUTE_S
        return None

    def first(self, start: float, end: float) -> Firing | None:
        """The first firing from ``start``'s minute on, up to ``end``, or None."""
        if not self.entries:
            return None
        minute = minute_of(start)
        while minute <= end:
            entry = self.firing(minute)
            if entry is not None:
                return Firing(entry, minute)
            minute += MINUTE_S
        return None


def minute_of(moment: float) -> int:
    """The start of ``moment``'s minute, in seconds since the epoch."""
    return int(moment // MINUTE_S) * MINUTE_S
