"""Open runner connections kept per session, so a call does not pay a connect and handshake.

A connection is lent to one caller at a time and comes back only if the call
finished cleanly and the runner has not closed it; anything else is closed.

It is also where a pause meets the calls (``pausing``): every call to a runner
is counted while it is under way, so a pause can refuse a busy session, and a
frozen session lends nothing (its runner would not answer; the call would hang
until the resume).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from .errors import RunnerRequestError, SessionPaused
from .runner_client import RunnerClient

MAX_IDLE_PER_SESSION = 4
Connect = Callable[[], Awaitable[RunnerClient]]


class RunnerConnections:
    """Idle runner connections kept per session, lent to one caller at a time."""

    def __init__(self) -> None:
        self._idle: collections.defaultdict[str, list[RunnerClient]] = collections.defaultdict(list)
        self._under_way: collections.Counter[str] = collections.Counter()  # calls per session
        self._frozen: set[str] = set()  # sessions paused, or being paused, by this engine

    def under_way(self, session_id: str) -> int:
        """How many calls to the session's runner are under way."""
        return self._under_way[session_id]

    def freeze(self, session_id: str) -> None:
        """Lend nothing for the session until ``thaw``: it is being paused."""
        self._frozen.add(session_id)

    def thaw(self, session_id: str) -> None:
        """Lend again for the session (it was resumed, or its pause failed)."""
        self._frozen.discard(session_id)

    def frozen(self, session_id: str) -> bool:
        return session_id in self._frozen

    @contextlib.contextmanager
    def call(self, session_id: str) -> Iterator[None]:
        """``with``: count a call to the session's runner while it is under way; refused while it is frozen."""
        if session_id in self._frozen:
            raise SessionPaused.of(session_id)
        self._under_way[session_id] += 1
        try:
            yield
        finally:
            self._under_way[session_id] -= 1
            if not self._under_way[session_id]:
                del self._under_way[session_id]

    @contextlib.asynccontextmanager
    async def lend(self, session_id: str, connect: Connect) -> AsyncIterator[RunnerClient]:
        """``async with``: a connection to the session's runner, an idle one or a new one from ``connect``."""
        with self.call(session_id):
            async with self._lend(session_id, connect) as client:
                yield client

    @contextlib.asynccontextmanager
    async def _lend(self, session_id: str, connect: Connect) -> AsyncIterator[RunnerClient]:
        idle = self._idle[session_id]
        client = None
        while idle and client is None:
            candidate = idle.pop()
            if candidate.usable:
                client = candidate
            else:
                await candidate.close()
        if client is None:
            client = await connect()
        clean = False
        try:
            yield client
            clean = True
        except RunnerRequestError:
            clean = True  # an error reply leaves the connection in step
            raise
        finally:
            if clean and client.usable and len(self._idle[session_id]) < MAX_IDLE_PER_SESSION:
                self._idle[session_id].append(client)
            else:
                await client.close()

    def drop(self, session_id: str) -> None:
        """Close the session's idle connections (it is being destroyed)."""
        self._frozen.discard(session_id)
        for client in self._idle.pop(session_id, []):
            client.close_nowait()

    def close(self) -> None:
        """Close every session's idle connections (the engine is closing)."""
        for session_id in list(self._idle):
            self.drop(session_id)
