"""Processes beside a session's shell (``engine.processes``): start, list, follow, wait, input and signals.

Each call borrows a connection to the session's runner (``Engine.runner``);
following a process keeps one for as long as the caller reads. A session
with a follower counts as in use for its idle timeout: someone is waiting on it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import runner_jobs
from .errors import RunnerRequestError
from .runner_jobs import ProcessEvent, ProcessInfo, ProcessOutput
from .store import SessionRecord

if TYPE_CHECKING:
    from .engine import Engine

# Output a ``wait`` collects per stream; more is counted, not kept (the runner keeps 1 MiB anyway).
MAX_WAIT_OUTPUT = 1 << 20


@dataclass(frozen=True)
class ProcessWait:
    """A process after ``wait``: its info (``running`` if the wait timed out) and the output it kept."""

    process: ProcessInfo
    stdout: bytes
    stderr: bytes


class SessionProcesses:
    """The processes of every session, through the engine's runner connections."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._followers: collections.Counter[str] = collections.Counter()  # per session

    def last_activity(self, record: SessionRecord) -> float | None:
        """An activity probe for the reaper: now while someone follows one of the session's processes."""
        return time.time() if self._followers[record.id] else None

    async def start(self, session_id: str, command: str, **options: Any) -> ProcessInfo:
        """Start ``command`` beside the shell (``runner_jobs.spawn_args`` options) and return at once."""
        args = self._spawn_args(session_id, command, options)
        async with self._engine.runner(session_id) as runner:
            info = await runner_jobs.spawn(runner, args)
        self._engine.touch(session_id, calls=1)
        return info

    def _spawn_args(self, session_id: str, command: str, options: dict[str, Any]) -> dict[str, Any]:
        """The spawn's arguments, its environment the session's with its own over it."""
        env = self._engine.session_env(session_id, options.pop("env", None))
        return runner_jobs.spawn_args(command, env=env, **options)

    async def start_and_follow(
        self, session_id: str, command: str, **options: Any
    ) -> AsyncGenerator[ProcessEvent, None]:
        """Start ``command`` and yield its info, its output as it comes, and its final info.

        Closing the generator early detaches; the process runs on.
        """
        args = self._spawn_args(session_id, command, options)
        self._engine.touch(session_id, calls=1)
        async with self._following(session_id) as runner:
            async for event in runner_jobs.follow(runner, args):
                yield event

    async def follow(self, session_id: str, pid: int, after: int = 0) -> AsyncGenerator[ProcessEvent, None]:
        """Process ``pid`` as it stands, its output after sequence number ``after`` and what follows, then its
        final info."""
        yield await self.get(session_id, pid)  # how it stands as the following begins
        async with self._following(session_id) as runner:
            async for event in runner_jobs.attach(runner, pid, after):
                yield event

    @contextlib.asynccontextmanager
    async def _following(self, session_id: str) -> AsyncGenerator[Any, None]:
        self._followers[session_id] += 1
        try:
            async with self._engine.runner(session_id) as runner:
                yield runner
        finally:
            self._followers[session_id] -= 1
            if not self._followers[session_id]:
                del self._followers[session_id]

    async def list(self, session_id: str) -> list[ProcessInfo]:
        async with self._engine.runner(session_id, touch=False) as runner:
            return await runner_jobs.list_processes(runner)

    async def get(self, session_id: str, pid: int) -> ProcessInfo:
        for info in await self.list(session_id):
            if info.pid == pid:
                return info
        raise RunnerRequestError("not_found", "no process %d in session %s" % (pid, session_id))

    async def wait(self, session_id: str, pid: int, timeout_s: float | None) -> ProcessWait:
        """Wait up to ``timeout_s`` (None: no limit) for process ``pid`` to end; the output it kept meanwhile."""
        kept: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        final: ProcessInfo | None = None

        async def collect() -> None:
            nonlocal final
            async with contextlib.aclosing(self.follow(session_id, pid)) as events:
                async for event in events:
                    if isinstance(event, ProcessOutput):
                        buffer = kept[event.stream]
                        buffer += event.data[: max(0, MAX_WAIT_OUTPUT - len(buffer))]
                    else:
                        final = event

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(collect(), timeout_s)
        if final is None:  # timed out: how it stands now
            final = await self.get(session_id, pid)
        return ProcessWait(final, bytes(kept["stdout"]), bytes(kept["stderr"]))

    async def send_input(self, session_id: str, pid: int, data: bytes, *, eof: bool = False) -> ProcessInfo:
        async with self._engine.runner(session_id) as runner:
            return await runner_jobs.send_input(runner, pid, data, eof=eof)

    async def signal(self, session_id: str, pid: int, signal: str | int = "SIGKILL") -> ProcessInfo:
        async with self._engine.runner(session_id) as runner:
            return await runner_jobs.send_signal(runner, pid, signal)
