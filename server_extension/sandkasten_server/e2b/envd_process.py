"""envd's ``process.Process`` service on the sandbox's processes (``engine.processes``).

A command E2B starts is a runner process (runner/PROTOCOL.md §16), named by
its pid: stdout and stderr apart, stdin a pipe unless ``stdin`` is false, and
E2B's ``Connect-Timeout-Ms`` its timeout (envd kills at the deadline too).
Leaving a stream only stops following. E2B's users (``root``, ``user``) are
all the sandbox's one user; PTY processes are not offered here.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from sandkasten_kernel.engine.runner_jobs import ProcessInfo, ProcessOutput

from .connect_rpc import RpcError, b64, field, unb64
from .paths import to_e2b, to_sandbox
from .rpc import Message, Rpc, RpcCall

SIGNALS: dict[Any, str] = {"SIGNAL_SIGKILL": "SIGKILL", "SIGNAL_SIGTERM": "SIGTERM", 9: "SIGKILL", 15: "SIGTERM"}
KEEPALIVE: Message = {"event": {"keepalive": {}}}
_SIGNAL_WORDS = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}


def command_of(config: Message) -> str:
    """The bash source of a ``ProcessConfig``: ``bash -l -c X`` is X (the runner runs it so), else the argv quoted."""
    cmd = field(config, "cmd", str)
    if not cmd:
        raise RpcError("invalid_argument", "process.cmd is required")
    args = field(config, "args", list, [])
    if not all(isinstance(arg, str) for arg in args):
        raise RpcError("invalid_argument", "process.args must be strings")
    if cmd in ("/bin/bash", "bash") and len(args) == 3 and args[:2] == ["-l", "-c"]:
        return str(args[2])
    return shlex.join([cmd, *args])


def config_of(info: ProcessInfo) -> Message:
    return {"cmd": "/bin/bash", "args": ["-l", "-c", info.command], "envs": {}, "cwd": to_e2b(info.cwd)}


def end_event(info: ProcessInfo) -> Message:
    """envd's end event: Go's ``ProcessState`` wording, an error text for anything but exit 0."""
    code = info.exit_code
    if code is not None and code >= 0:
        status = "exit status %d" % code
        end: Message = {"exitCode": code, "exited": True, "status": status}
        if code:
            end["error"] = status
        return {"event": {"end": end}}
    number = -(code or signal.SIGKILL)
    try:
        word = _SIGNAL_WORDS.get(signal.Signals(number), signal.Signals(number).name)
    except ValueError:
        word = "signal %d" % number
    status = "signal: %s" % word
    return {"event": {"end": {"exitCode": -1, "exited": False, "status": status, "error": status}}}


def selected_pid(call: RpcCall, message: Message) -> Any:
    selector = field(message, "process", dict)
    if selector is None:
        raise RpcError("invalid_argument", "process (a pid or a tag) is required")
    return selector


async def find_pid(call: RpcCall, selector: Message) -> int:
    """The pid a ``ProcessSelector`` names: its pid, or the running process with its tag."""
    pid = field(selector, "pid", int)
    if pid is not None:
        return int(pid)
    tag = field(selector, "tag", str)
    if tag is None:
        raise RpcError("invalid_argument", "process needs a pid or a tag")
    for info in await call.engine.processes.list(call.record.id):
        if info.tag == tag and info.running:
            return info.pid
    raise RpcError("not_found", "process with tag %s not found" % tag)


async def events(
    infos_and_output: AsyncIterator[ProcessInfo | ProcessOutput], started: bool = False
) -> AsyncGenerator[Message, None]:
    """Runner events as envd's: start (unless ``started``), data (stdout or stderr, base64), end; a timeout
    is envd's deadline."""
    async for event in infos_and_output:
        if isinstance(event, ProcessOutput):
            yield {"event": {"data": {event.stream: b64(event.data)}}}
        elif not started:
            started = True
            yield {"event": {"start": {"pid": event.pid}}}
            if not event.running:
                yield end_event(event)
                return
        elif not event.running:
            if event.timed_out:
                raise RpcError("deadline_exceeded", "context deadline exceeded")
            yield end_event(event)
            return  # the end is said once (a follow starts with the process as it stands, ended or not)


async def start(call: RpcCall, message: Message) -> AsyncGenerator[Message, None]:
    if message.get("pty"):
        raise RpcError("unimplemented", "PTY processes (sandbox.pty) are not supported by Sandkasten's E2B API")
    config = field(message, "process", dict)
    if config is None:
        raise RpcError("invalid_argument", "process is required")
    envs = field(config, "envs", dict, {})
    if not all(isinstance(value, str) for value in envs.values()):
        raise RpcError("invalid_argument", "process.envs must map names to strings")
    following = call.engine.processes.start_and_follow(
        call.record.id,
        command_of(config),
        cwd=to_sandbox(field(config, "cwd", str)),
        env=envs,
        stdin=field(message, "stdin", bool, True),
        tag=field(message, "tag", str),
        timeout_ms=call.timeout_ms,
    )
    async with contextlib.aclosing(following):
        async for event in events(following):
            yield event


async def connect(call: RpcCall, message: Message) -> AsyncGenerator[Message, None]:
    pid = await find_pid(call, selected_pid(call, message))
    info = await call.engine.processes.get(call.record.id, pid)
    # envd does not replay: only what comes from now on, after the start event.
    yield {"event": {"start": {"pid": pid}}}
    following = call.engine.processes.follow(call.record.id, pid, after=info.last_seq)
    async with contextlib.aclosing(following):
        async for event in events(following, started=True):
            yield event


async def list_processes(call: RpcCall, message: Message) -> Message:
    infos = await call.engine.processes.list(call.record.id)
    return {
        "processes": [
            {"config": config_of(info), "pid": info.pid, **({"tag": info.tag} if info.tag else {})}
            for info in infos
            if info.running
        ]
    }


async def send_input(call: RpcCall, message: Message) -> Message:
    pid = await find_pid(call, selected_pid(call, message))
    given = field(message, "input", dict, {})
    if "pty" in given:
        raise RpcError("unimplemented", "PTY input is not supported by Sandkasten's E2B API")
    await call.engine.processes.send_input(call.record.id, pid, unb64(given.get("stdin", ""), "input.stdin"))
    return {}


async def close_stdin(call: RpcCall, message: Message) -> Message:
    pid = await find_pid(call, selected_pid(call, message))
    await call.engine.processes.send_input(call.record.id, pid, b"", eof=True)
    return {}


async def send_signal(call: RpcCall, message: Message) -> Message:
    pid = await find_pid(call, selected_pid(call, message))
    name = SIGNALS.get(message.get("signal"))
    if name is None:
        raise RpcError("unimplemented", "only SIGNAL_SIGKILL and SIGNAL_SIGTERM are supported")
    await call.engine.processes.signal(call.record.id, pid, name)
    return {}


async def update(call: RpcCall, message: Message) -> Message:
    raise RpcError("unimplemented", "PTY processes (sandbox.pty) are not supported by Sandkasten's E2B API")


async def stream_input(call: RpcCall, messages: AsyncIterator[Message]) -> Message:
    """Input as it comes: a ``start`` naming the process, then ``data`` messages (keepalives skipped)."""
    pid: int | None = None
    async for message in messages:
        if "start" in message:
            pid = await find_pid(call, selected_pid(call, field(message, "start", dict, {})))
        elif "data" in message:
            if pid is None:
                raise RpcError("invalid_argument", "the stream must start with a start message")
            given = field(field(message, "data", dict, {}), "input", dict, {})
            data = unb64(given.get("stdin", ""), "input.stdin")
            await call.engine.processes.send_input(call.record.id, pid, data)
    return {}


RPCS: dict[str, Rpc] = {
    "process.Process/Start": Rpc("server", start, KEEPALIVE),
    "process.Process/Connect": Rpc("server", connect, KEEPALIVE),
    "process.Process/List": Rpc("unary", list_processes),
    "process.Process/SendInput": Rpc("unary", send_input),
    "process.Process/CloseStdin": Rpc("unary", close_stdin),
    "process.Process/SendSignal": Rpc("unary", send_signal),
    "process.Process/Update": Rpc("unary", update),
    "process.Process/StreamInput": Rpc("client", stream_input),
}
