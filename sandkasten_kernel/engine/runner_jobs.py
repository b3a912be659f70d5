"""The runner's processes beside the shell, from the host (runner/PROTOCOL.md §16).

Functions over one ``RunnerClient``: the framing and deadlines are the
client's. Following a process (``follow``, ``attach``) holds its connection
until the process ends or the caller stops reading; stopping only detaches.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RunnerUnavailable
from .runner_client import RunnerClient


@dataclass(frozen=True)
class ProcessInfo:
    """A process started beside the shell, as the runner last saw it."""

    pid: int
    command: str
    cwd: str
    tag: str | None
    running: bool
    exit_code: int | None  # -N: killed by signal N; None while running or after a timeout
    timed_out: bool
    started_at: float
    ended_at: float | None
    stdin_open: bool
    dropped_bytes: int  # output older than the runner keeps, no longer available to attach
    last_seq: int  # the sequence number of its last output chunk (0: none yet)

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> ProcessInfo:
        return cls(**{name: reply[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class ProcessOutput:
    """A chunk of a process's output: ``stream`` is ``stdout`` or ``stderr``."""

    seq: int
    stream: str
    data: bytes


ProcessEvent = ProcessInfo | ProcessOutput


def spawn_args(
    command: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bool = False,
    tag: str | None = None,
    timeout_ms: int | None = None,
) -> dict[str, Any]:
    """The ``spawn`` op's arguments; ``stdin`` keeps the process's stdin open for ``send_input``."""
    args: dict[str, Any] = {"command": command, "stdin": stdin}
    for name, value in (("cwd", cwd), ("tag", tag), ("timeout_ms", timeout_ms)):
        if value is not None:
            args[name] = value
    if env:
        args["env"] = dict(env)
    return args


async def spawn(client: RunnerClient, args: Mapping[str, Any]) -> ProcessInfo:
    """Start a process (``spawn_args``) and return at once."""
    result, _ = await client.request("spawn", args)
    return ProcessInfo.from_reply(result)


async def follow(client: RunnerClient, args: Mapping[str, Any]) -> AsyncIterator[ProcessEvent]:
    """Start a process and stay on it: its ``ProcessInfo`` first, then its output, then its final info."""
    async for message, data in client.frames("spawn", {**args, "follow": True}):
        event = _event(message, data)
        if event is not None:
            yield event


async def attach(client: RunnerClient, pid: int, after: int = 0) -> AsyncIterator[ProcessEvent]:
    """The output a process gave after sequence number ``after`` and what follows, then its final info."""
    async for message, data in client.frames("attach", {"pid": pid, "after": after}):
        event = _event(message, data)
        if event is not None:
            yield event


def _event(message: Mapping[str, Any], data: bytes) -> ProcessEvent | None:
    kind = message.get("type")
    if kind == "output":
        return ProcessOutput(seq=message["seq"], stream=message["stream"], data=data)
    if kind == "started":
        return ProcessInfo.from_reply(message["process"])
    if kind == "result":
        return ProcessInfo.from_reply(message["result"])
    raise RunnerUnavailable("unexpected %r frame from a runner following a process" % kind)


async def list_processes(client: RunnerClient) -> list[ProcessInfo]:
    """The processes the runner started and still remembers, oldest first."""
    result, _ = await client.request("jobs")
    return [ProcessInfo.from_reply(entry) for entry in result["processes"]]


async def send_input(client: RunnerClient, pid: int, data: bytes, *, eof: bool = False) -> ProcessInfo:
    """Write ``data`` to the process's stdin; ``eof`` closes it after."""
    result, _ = await client.request("job_input", {"pid": pid, "eof": eof}, data)
    return ProcessInfo.from_reply(result)


async def send_signal(client: RunnerClient, pid: int, signal: str | int) -> ProcessInfo:
    """Send ``signal`` (a name such as ``SIGTERM``, or a number) to every process of its session."""
    result, _ = await client.request("job_signal", {"pid": pid, "signal": signal})
    return ProcessInfo.from_reply(result)
