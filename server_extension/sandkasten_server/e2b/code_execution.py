"""One ``/execute``: the code runs in its context while its lines stream to the client.

The code runs in a task of its own and puts its lines on a queue; the stream
takes them off and writes a keepalive after 5 s of quiet. Those writes are how
a client that has gone is noticed (E2B's SDKs leave at their timeout): then the
kernel is interrupted, as E2B's server does, and the execution is given a few
seconds to stop; an execution still waiting for its turn is just dropped.

E2B's server runs the code until it ends, so there is no timeout here. The
output kept is capped at the largest ``max_output`` of ``run_code``; past it
the code runs on and a line on stderr says that output was dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sandkasten_kernel.engine import EngineError, SessionRecord

from ..errors import ApiError
from ..session_kernels import INTERRUPT_GRACE_S, MAX_OUTPUT_LIMIT, CodeResult
from .base import E2BError, status_and_message
from .code_contexts import Context
from .code_lines import END, KEEPALIVE, cwd_prelude, error_line, line_of, now_iso

KEEPALIVE_S = 5.0
log = logging.getLogger("sandkasten.e2b")

Line = dict[str, Any]
Send = Callable[[Line], Awaitable[None]]


class Execution:
    """``code`` (with its ``env_vars`` prelude) run in ``context``, its lines queued for the stream."""

    def __init__(self, context: Context, record: SessionRecord, code: str) -> None:
        self.context = context
        self.record = record
        self.code = code
        self.lines: asyncio.Queue[Line | None] = asyncio.Queue()
        self.started = False  # it has the context: the kernel runs it (or is about to)
        self.ended: tuple[str, str] | None = None  # the context ended it: the error it ends with
        self._run: asyncio.Task[CodeResult] | None = None
        self._errors = 0

    async def stream(self, send: Send) -> None:
        """Run the code and ``send`` its lines, then ``end_of_execution``. ``send`` raises (the client has
        gone): the execution is abandoned (``abandon``) and the error goes on."""
        work = asyncio.ensure_future(self._work())
        try:
            while True:
                try:
                    line = await asyncio.wait_for(self.lines.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    line = KEEPALIVE
                if line is None:
                    break
                await send(line)
            await work
            await send(END)
        except BaseException:
            await asyncio.shield(self.abandon(work))
            raise

    async def abandon(self, work: asyncio.Future[None]) -> None:
        """Nobody reads the lines any more: interrupt the kernel if it runs this code, give it
        ``INTERRUPT_GRACE_S`` to stop, and stop waiting for it then."""
        if work.done():
            return
        if self.started:
            log.info("e2b: the client of an execution in %s left: interrupting its kernel", self.record.id)
            with contextlib.suppress(Exception):
                await self.context.interrupt()
            await asyncio.wait({work}, timeout=INTERRUPT_GRACE_S)
        work.cancel()
        await asyncio.gather(work, return_exceptions=True)

    async def end_with(self, name: str, value: str) -> None:
        """The context restarts or goes: stop waiting for this execution, which ends with that error."""
        self.ended = (name, value)
        if self._run is not None:
            self._run.cancel()
            await asyncio.gather(self._run, return_exceptions=True)

    async def _work(self) -> None:
        try:
            async with self.context.lock:
                self.started = True
                self.context.current = self
                code = self.code
                if not self.context.set_up:  # the first execution in this kernel process
                    code = cwd_prelude(self.context.first_cwd(), code)
                    self.context.set_up = True
                try:
                    self._run = asyncio.ensure_future(self.context.run(self.record, code, self._emit))
                    result = await self._run
                finally:
                    self.context.current = None
            self._tail(result)
        except asyncio.CancelledError:
            if self.ended is None:
                raise
            self._put(error_line(*self.ended, []))
        except (EngineError, ApiError, E2BError) as exc:
            status, message = status_and_message(exc, 500, "the execution failed")
            self._put(error_line("SandkastenError", "%s (%d)" % (message, status), []))
        except Exception:  # a bug: the client hears of it, rather than of an execution with no outcome
            log.exception("E2B execution in context %s failed", self.context.id)
            self._put(error_line("SandkastenError", "the execution failed: an internal error (500)", []))
        finally:
            self.lines.put_nowait(None)

    async def _emit(self, event: dict[str, Any]) -> None:
        line = line_of(event)
        if line is not None:
            self._put(line)

    def _put(self, line: Line) -> None:
        if line["type"] == "error":
            if self._errors:
                return  # E2B's SDKs keep one error: the first
            self._errors += 1
        self.lines.put_nowait(line)

    def _tail(self, result: CodeResult) -> None:
        """What ``run`` says only at the end: a dropped part, an error it did not stream, the count."""
        if result.truncated:
            note = "[sandkasten: output past %d bytes was dropped, of %d]\n" % (MAX_OUTPUT_LIMIT, result.output_bytes)
            self._put({"type": "stderr", "text": note, "timestamp": now_iso()})
        if result.error is not None:  # the kernel died: no error message came from it
            error = result.error
            self._put(error_line(error.get("ename", ""), error.get("evalue", ""), error.get("traceback") or []))
        if result.execution_count is not None:
            self._put({"type": "number_of_executions", "execution_count": result.execution_count})
