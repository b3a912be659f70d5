"""``sessions/{id}/processes``: commands beside the shell, with their own stdout, stderr and stdin.

A process outlives the request that started it. Its events (``output`` per
stream, then ``exit``) can be followed from any point it still keeps, by any
number of clients; a client that leaves only stops following.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from sandkasten_kernel.engine.runner_jobs import ProcessEvent, ProcessInfo, ProcessOutput

from ..errors import ApiError
from ..streaming import EventStream
from .base import SandkastenHandler


def process_json(info: ProcessInfo) -> dict[str, Any]:
    return {name: getattr(info, name) for name in ProcessInfo.__dataclass_fields__}


def start_options(body: dict[str, Any]) -> dict[str, Any]:
    """The engine's start options from a validated ``ProcessStart``."""
    options: dict[str, Any] = {name: body[name] for name in ("cwd", "env", "tag") if name in body}
    if "timeout_ms" in body:
        options["timeout_ms"] = int(body["timeout_ms"])
    options["stdin"] = bool(body.get("stdin", False))
    return options


def parse_pid(segment: str) -> int:
    if not segment.isdigit() or len(segment) > 10:
        raise ApiError(404, "not_found", "no process %r: a process is named by its pid" % segment)
    return int(segment)


class _Texts:
    """Output bytes as text per stream (UTF-8, invalid bytes replaced; a character split across chunks kept whole)."""

    def __init__(self) -> None:
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in ("stdout", "stderr")
        }

    def decode(self, output: ProcessOutput) -> str:
        return str(self._decoders[output.stream].decode(output.data))


async def process_events(
    events: AsyncGenerator[ProcessEvent, None], first: str
) -> AsyncGenerator[dict[str, Any], None]:
    """A process's events as the API sends them: ``first`` (``started`` or ``attached``) with the
    process, ``output`` ones ``{stream, seq, data}``, and ``exit`` with the process as it ended."""
    texts = _Texts()
    kind = first
    async with contextlib.aclosing(events) as following:
        async for event in following:
            if isinstance(event, ProcessOutput):
                yield {"type": "output", "stream": event.stream, "seq": event.seq, "data": texts.decode(event)}
                continue
            yield {"type": kind, "process": process_json(event)}
            kind = "exit"


class ProcessesHandler(SandkastenHandler):
    """Start a process (``stream: true`` follows it in the reply), or list the session's processes."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("ProcessStart")
        processes = self.engine.processes
        if body.get("stream"):
            events = processes.start_and_follow(record.id, body["command"], **start_options(body))
            await EventStream(self).relay(process_events(events, "started"))
            return
        info = await processes.start(record.id, body["command"], **start_options(body))
        self.reply(process_json(info), 201)

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        record = self.session_record(session_id)
        infos = await self.engine.processes.list(record.id)
        self.reply({"processes": [process_json(info) for info in infos]})


class ProcessHandler(SandkastenHandler):
    """One process: how it stands (``GET``), or kill it and everything it started (``DELETE``)."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        self.reply(process_json(await self.engine.processes.get(record.id, parse_pid(pid))))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        self.reply(process_json(await self.engine.processes.signal(record.id, parse_pid(pid), "SIGKILL")))


class ProcessEventsHandler(SandkastenHandler):
    """``GET processes/{pid}/events?after=N``: its output after sequence number N (0: all it keeps), then its exit."""

    @web.authenticated
    @authorized
    async def get(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        after = self.get_query_argument("after", "0")
        if not after.isdigit():
            raise ApiError(400, "bad_request", "after must be a sequence number (0 or more)")
        events = self.engine.processes.follow(record.id, parse_pid(pid), int(after))
        await EventStream(self).relay(process_events(events, "attached"))


class ProcessWaitHandler(SandkastenHandler):
    """``POST processes/{pid}/wait``: until it ends or ``timeout_ms`` passes; its output (as kept) and state."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("ProcessWait", required=False)
        timeout_ms = body.get("timeout_ms")
        waited = await self.engine.processes.wait(
            record.id, parse_pid(pid), None if timeout_ms is None else int(timeout_ms) / 1000
        )
        self.reply(
            {
                "process": process_json(waited.process),
                "stdout": waited.stdout.decode("utf-8", "replace"),
                "stderr": waited.stderr.decode("utf-8", "replace"),
            }
        )


class ProcessStdinHandler(SandkastenHandler):
    """``POST processes/{pid}/stdin``: text to its stdin (started with ``stdin: true``); ``eof`` closes it."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("ProcessInput")
        data = body.get("data", "").encode("utf-8")
        info = await self.engine.processes.send_input(record.id, parse_pid(pid), data, eof=body.get("eof", False))
        self.reply(process_json(info))


class ProcessSignalHandler(SandkastenHandler):
    """``POST processes/{pid}/signal``: a signal to the process and everything it started."""

    @web.authenticated
    @authorized
    async def post(self, session_id: str, pid: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("ProcessSignal")
        self.reply(process_json(await self.engine.processes.signal(record.id, parse_pid(pid), body["signal"])))
