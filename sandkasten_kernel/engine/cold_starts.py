"""The cold-start gate: at most ``quota.max_cold_starts`` sandboxes start at once.

On a small machine parallel container starts only slow each other down. A
create that finds the gate full waits its turn (first come, first served) for
up to ``quota.cold_start_wait_s``, then gets ``PoolExhausted`` (HTTP 503 with
Retry-After). Both limits are read at each call, so a config change applies live.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from .errors import PoolExhausted


class ColdStartGate:
    """Lets at most a configured number of sandboxes start at once; the others wait their turn."""

    def __init__(self) -> None:
        self.running = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def slot(self, allowed: int, wait_s: float) -> AsyncIterator[None]:
        """Hold one of ``allowed`` slots (0: no limit) while the body runs."""

        def free() -> bool:
            return not allowed or self.running < allowed

        async with self._changed:
            try:
                if not free():
                    if wait_s <= 0:
                        raise TimeoutError
                    await asyncio.wait_for(self._changed.wait_for(free), timeout=wait_s)
            except TimeoutError:
                raise PoolExhausted(
                    "no warm sandbox is ready and %d are starting (quota.max_cold_starts); waited %g s "
                    "(quota.cold_start_wait_s): retry shortly" % (self.running, wait_s)
                ) from None
            self.running += 1
        try:
            yield
        finally:
            async with self._changed:
                self.running -= 1
                self._changed.notify()
