"""How many warm sandboxes to keep of an image: a floor, a ceiling, and the demand between them.

A plain count (``python: 4``) keeps exactly that many. A floor and a ceiling
(``python: {min: 2, max: 32}``) let the pool follow demand:

- every miss (a create that found no warm sandbox and started one cold) raises
  the target by one, and so does a claim that takes the last ready one, so a
  burst teaches the pool the size of the next one;
- after ``shrink_after_s`` without a miss, the target falls halfway back to the
  floor, and again after each further period, giving back the idle memory
  (some 60 MB a sandbox with its kernel).

This module decides the numbers; ``pool`` starts and removes the sandboxes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

POOL_SIZE_CEILING = 200  # a typo's guard (the API's too): more warm sandboxes than one host holds


@dataclass(frozen=True)
class PoolSize:
    """The floor and ceiling of one image's warm pool (equal for a plain count)."""

    min: int
    max: int

    @classmethod
    def parse(cls, value: Any) -> PoolSize:
        """``4`` or ``{min: 2, max: 16}`` (``max`` defaults to ``min``); ValueError saying what is wrong."""
        if isinstance(value, dict):
            unknown = set(value) - {"min", "max"}
            if unknown or "min" not in value:
                raise ValueError("give {min: N, max: M} (max is optional), not %r" % (value,))
            low, high = _bound(value["min"]), _bound(value.get("max", value["min"]))
        else:
            low = high = _bound(value)
        if high < low:
            raise ValueError("max (%d) is below min (%d)" % (high, low))
        return cls(low, high)

    @property
    def adaptive(self) -> bool:
        """Whether the target moves with demand (a ceiling above the floor)."""
        return self.max > self.min


def _bound(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= POOL_SIZE_CEILING:
        raise ValueError("a pool size is a whole number from 0 to %d, not %r" % (POOL_SIZE_CEILING, value))
    return value


class Demand:
    """One image's target within its ``PoolSize``, raised by misses and lowered by quiet."""

    def __init__(self, size: PoolSize, shrink_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.shrink_after_s = shrink_after_s
        self.size = size
        self.target = size.min
        self._last_pressure = clock()

    def resize(self, size: PoolSize, reset: bool = False) -> None:
        """A new floor and ceiling (a config change, or a resize through the API): the target moves into them.

        ``reset`` (a schedule's entry firing) sets the target to the new floor
        instead: the entry says how many to keep from now on, and what demand
        had added before it (a class that just ended) is given back at once.
        """
        self.size = size
        self.target = size.min if reset else min(max(self.target, size.min), size.max)
        if reset:
            self._last_pressure = self._clock()

    def missed(self) -> None:
        """A create found no warm sandbox: keep one more, up to the ceiling."""
        self._pressed()

    def claimed(self, ready_left: int) -> None:
        """A create took a warm sandbox; taking the last one counts as pressure too."""
        if ready_left == 0:
            self._pressed()

    def _pressed(self) -> None:
        self._last_pressure = self._clock()
        self.target = min(self.target + 1, self.size.max)

    def settle(self) -> bool:
        """Lower the target after a quiet period (call it now and then); True if it fell."""
        now = self._clock()
        if self.target <= self.size.min or now - self._last_pressure < self.shrink_after_s:
            return False
        self.target -= max(1, (self.target - self.size.min) // 2)
        self._last_pressure = now  # the next step comes a whole period later
        return True
