"""Open runner connections kept per session, so a call does not pay a connect and handshake.

A connection is lent to one caller at a time and comes back only if the call
finished cleanly and the runner has not closed it; anything else is closed.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from .errors import RunnerRequestError
from .runner_client import RunnerClient

MAX_IDLE_PER_SESSION = 4
Connect = Callable[[], Awaitable[RunnerClient]]


class RunnerConnections:
    """Idle runner connections kept per session, lent to one caller at a time."""

    def __init__(self) -> None:
        self._idle: collections.defaultdict[str, list[RunnerClient]] = collections.defaultdict(list)

    @contextlib.asynccontextmanager
    async def lend(self, session_id: str, connect: Connect) -> AsyncIterator[RunnerClient]:
        """``async with``: a connection to the session's runner, an idle one or a new one from ``connect``."""
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
        for client in self._idle.pop(session_id, []):
            client.close_nowait()

    def close(self) -> None:
        """Close every session's idle connections (the engine is closing)."""
        for session_id in list(self._idle):
            self.drop(session_id)
