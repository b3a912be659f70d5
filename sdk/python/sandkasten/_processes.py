"""Processes beside the shell: ``Process``, the handle ``session.exec(..., background=True)`` gives, and the
streamed run behind ``session.exec(..., on_stdout=...)``.

A process outlives the request that started it. Its output is kept in the
sandbox (the last 1 MiB of it) as numbered chunks, so any number of clients
can follow it, from the start or from the ``seq`` they saw last.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from . import _calls
from ._callbacks import OutputCallback, call_back
from ._exceptions import BadRequestError, ExecTimeout, SandkastenConnectionError
from ._models import ExecResult, ProcessEvent, ProcessInfo, ProcessResult
from ._transport import Transport

# The longest one ``wait`` request waits, at most half the client's timeout: longer waits take several.
WAIT_SLICE_S = 50.0


class _Output:
    """A followed process's output, per stream and in order, handed to the callbacks as it comes."""

    def __init__(self, on_stdout: OutputCallback | None, on_stderr: OutputCallback | None) -> None:
        self._callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        self._streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._merged: list[str] = []
        self.final: ProcessInfo | None = None

    async def take(self, event: ProcessEvent) -> None:
        if event.type == "output" and event.stream in self._streams and event.data is not None:
            self._streams[event.stream].append(event.data)
            self._merged.append(event.data)
            await call_back(self._callbacks[event.stream], event.data)
        elif event.process is not None:
            self.final = event.process

    async def drain(self, events: AsyncIterator[dict[str, Any]]) -> ProcessResult:
        """Take every event to the stream's end; the result as the last ``exit`` event has it."""
        async for data in events:
            await self.take(ProcessEvent.from_json(data))
        return self.result()

    def result(self) -> ProcessResult:
        if self.final is None:
            raise SandkastenConnectionError("the process's events ended before it did")
        return ProcessResult(self.final, "".join(self._streams["stdout"]), "".join(self._streams["stderr"]))

    def timeout_error(self, result: ProcessResult) -> ExecTimeout:
        """``ExecTimeout`` for a process killed at its timeout, with stdout and stderr as they came."""
        merged = "".join(self._merged)
        ended = result.process.ended_at or result.process.started_at
        duration_ms = (ended - result.process.started_at) * 1000
        exec_result = ExecResult(
            output=merged,
            exit_code=None,
            timed_out=True,
            truncated=result.process.dropped_bytes > 0,
            duration_ms=duration_ms,
            output_bytes=len(merged.encode()),
            ran_as="process",
        )
        return ExecTimeout("the command ran past its timeout (%.0f ms)" % duration_ms, exec_result)


class Process:
    """A process started beside the shell. ``async for event in process``: its events from the start."""

    def __init__(self, transport: Transport, session_id: str, info: ProcessInfo) -> None:
        self._transport = transport
        self._follower: asyncio.Task[ProcessResult] | None = None
        self.session_id = session_id
        self.pid = info.pid
        self.info = info

    def __repr__(self) -> str:
        state = "running" if self.info.running else "exit %s" % self.info.exit_code
        return "<Process %d %r %s>" % (self.pid, self.info.command, state)

    def _call(self, method: str, action: str = "", body: Any = None, after: int | None = None) -> _calls.Call:
        params = {"after": str(after)} if after is not None else None
        return _calls.process_call(method, self.session_id, self.pid, action, body, params)

    async def _info(self, call: _calls.Call) -> ProcessInfo:
        self.info = ProcessInfo.from_json(await self._transport.send(call))
        return self.info

    async def refresh(self) -> ProcessInfo:
        """Fetch how it stands now (``info``)."""
        return await self._info(self._call("GET"))

    def events(self, after: int = 0) -> AsyncIterator[ProcessEvent]:
        """Its output chunks numbered after ``after`` (0: all it keeps), what it writes from then on, and its
        ``exit`` event. Stopping early only stops following: the process runs on."""
        return self._events(after)

    async def _events(self, after: int) -> AsyncIterator[ProcessEvent]:
        async for data in self._transport.events(self._call("GET", "events", after=after)):
            event = ProcessEvent.from_json(data)
            if event.process is not None:
                self.info = event.process
            yield event

    def __aiter__(self) -> AsyncIterator[ProcessEvent]:
        return self.events()

    async def follow(
        self,
        *,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        after: int = 0,
    ) -> ProcessResult:
        """Follow it to its end from chunk ``after`` on, calling back with its output as it comes; the result
        has the output followed."""
        output = _Output(on_stdout, on_stderr)
        async for event in self.events(after):
            await output.take(event)
        return output.result()

    async def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait until it ends, or ``timeout`` seconds pass (then ``result.running`` is True); its output as
        kept. Callbacks given when it started have all been called once it returns an ended result."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        slice_s = min(WAIT_SLICE_S, self._transport.timeout / 2)
        while True:
            left = slice_s if deadline is None else max(0.0, min(slice_s, deadline - loop.time()))
            reply = await self._transport.send(self._call("POST", "wait", {"timeout_ms": int(left * 1000)}))
            result = ProcessResult.from_json(reply)
            self.info = result.process
            if not result.running or (deadline is not None and loop.time() >= deadline):
                break
        if not result.running and self._follower is not None:
            await self._follower
        return result

    async def send_stdin(self, data: str, *, eof: bool = False) -> ProcessInfo:
        """Write ``data`` (UTF-8) to its stdin (it was started with ``stdin=True``); ``eof`` closes it after.
        ``BadRequestError`` with ``code`` ``stdin_closed`` once it is closed or the process has ended,
        ``stdin_full`` when the process has not read it for 20 s."""
        return await self._info(self._call("POST", "stdin", {"data": data, "eof": eof}))

    async def close_stdin(self) -> ProcessInfo:
        """Close its stdin: the process reads end of file."""
        return await self.send_stdin("", eof=True)

    async def signal(self, signal: str | int) -> ProcessInfo:
        """Send ``signal`` (``"SIGTERM"``, ``"TERM"``, ``15``, ...) to it and every process it started."""
        return await self._info(self._call("POST", "signal", {"signal": signal}))

    async def kill(self) -> ProcessInfo:
        """SIGKILL to it and every process it started (it may take a moment to show as ended)."""
        return await self._info(self._call("DELETE"))


async def _feed(process: Process, data: str) -> None:
    """Write ``data`` to a new process's stdin and close it; a process that ended or closed it first gets
    what it read."""
    try:
        await process.send_stdin(data, eof=True)
    except BadRequestError as exc:
        if exc.code != "stdin_closed":
            raise


async def _start_streamed(
    transport: Transport, session_id: str, call: _calls.Call
) -> tuple[Process, AsyncIterator[dict[str, Any]]]:
    """Start a process with its events in the reply: its handle, and the events after ``started``."""
    events = transport.events(call)
    first = await anext(events, None)
    if first is None or first.get("type") != "started" or "process" not in first:
        await events.aclose()
        raise SandkastenConnectionError("the server's stream began with %r, not with the process started" % first)
    return Process(transport, session_id, ProcessInfo.from_json(first["process"])), events


async def start(
    transport: Transport,
    session_id: str,
    command: str,
    options: Mapping[str, Any],
    stdin: str | bool | None,
    on_stdout: OutputCallback | None,
    on_stderr: OutputCallback | None,
) -> Process:
    """Start a process and return its handle; with callbacks, a task of the client follows it meanwhile.

    ``options``: ``timeout_ms``, ``cwd``, ``env``, ``tag`` (``_calls.process_start_call``). ``stdin``: True
    keeps it open for ``send_stdin``; text is written to it, then it is closed.
    """
    follow = on_stdout is not None or on_stderr is not None
    call = _calls.process_start_call(session_id, command, stdin=stdin not in (None, False), stream=follow, **options)
    if follow:
        process, events = await _start_streamed(transport, session_id, call)
        process._follower = transport.background(_Output(on_stdout, on_stderr).drain(events))
    else:
        process = Process(transport, session_id, ProcessInfo.from_json(await transport.send(call)))
    if isinstance(stdin, str):
        await _feed(process, stdin)
    return process


async def run(
    transport: Transport,
    session_id: str,
    command: str,
    options: Mapping[str, Any],
    stdin: str | None,
    on_stdout: OutputCallback | None,
    on_stderr: OutputCallback | None,
    raise_on_timeout: bool,
) -> ProcessResult:
    """Run a process to its end, calling back with its output as it comes; stdout and stderr apart."""
    call = _calls.process_start_call(session_id, command, stdin=stdin is not None, stream=True, **options)
    process, events = await _start_streamed(transport, session_id, call)
    # Written meanwhile: the process may read its input only as it writes its output.
    feeding = transport.background(_feed(process, stdin)) if stdin is not None else None
    output = _Output(on_stdout, on_stderr)
    try:
        result = await output.drain(events)
    except BaseException:
        if feeding is not None:
            feeding.cancel()
        raise
    if feeding is not None:
        await feeding
    if raise_on_timeout and result.timed_out:
        raise output.timeout_error(result)
    return result
