"""Asyncio client for a sandbox runner's control socket (runner/PROTOCOL.md).

The framing comes from ``sandkasten_runner.protocol``, the module the runner
itself uses. One client is one connection; its requests run one at a time, so
open another client for concurrent work (an exec and a file read, say).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from sandkasten_runner.protocol import DEFAULT_TIMEOUT_MS, PROTOCOL_VERSION, Message, encode_frame, encode_head

from .errors import RunnerRequestError, RunnerUnavailable
from .run_dir_names import checked_socket_path
from .runner_frames import Sink, read_frame
from .runner_terminal import RunnerTerminal
from .sandbox_init import open_init_pidfd

# Beyond an exec's timeout the runner still kills the process group and sends the result.
EXEC_GRACE_S = 15.0
# Frames carry up to 64 MiB of payload; the stream buffer must not cap them.
_STREAM_LIMIT = 1 << 20
# Socket buffers of a connection: a file moves in fewer, larger steps (the system may allow less).
_SOCKET_BUFFER_BYTES = 1 << 20
# A payload: bytes, or a list of pieces sent one after another as one payload (never joined).
Payload = bytes | list[bytes]
# Every call has a deadline: a runner that stops answering (frozen, starved, or
# not a runner at all) fails its own caller and holds up nobody else. Kernel
# starts wait for the kernel's sockets (the runner gives it 30 s) and restarts
# stop the old kernel first; usage is polled for listings, so it gives up soonest.
HELLO_DEADLINE_S = 10.0
CALL_DEADLINE_S = 30.0
RESTORE_DEADLINE_S = 300.0  # to send a snapshot's part (at most quota.max_snapshot_mb) to a runner
OP_DEADLINES_S = {"kernel_start": 60.0, "kernel_restart": 75.0, "kernel_shutdown": 30.0, "health": 60.0, "usage": 5.0}


@dataclass(frozen=True)
class ExecResult:
    """The outcome of one shell command in a sandbox, as the runner reports it."""

    output: str
    exit_code: int | None
    timed_out: bool
    truncated: bool
    duration_ms: float
    output_bytes: int
    shell_restarted: bool = False
    shell_exit: str | None = None
    oom_killed: bool = False  # the kernel killed a process of the sandbox for memory meanwhile
    ran_as: str = "shell"  # "process": the shell was busy, so it ran beside it (if_busy="process")

    @classmethod
    def from_reply(cls, result: Mapping[str, Any], output: str) -> ExecResult:
        """The result from the runner's ``exec`` reply and the command's output."""
        return cls(
            output=output,
            exit_code=result["exit_code"],
            timed_out=result["timed_out"],
            truncated=result["truncated"],
            duration_ms=result["duration_ms"],
            output_bytes=result["output_bytes"],
            shell_restarted=result.get("shell_restarted", False),
            shell_exit=result.get("shell_exit"),
            oom_killed=result.get("oom_killed", False),
            ran_as=result.get("ran_as", "shell"),
        )


def _exec_args(
    command: str,
    timeout_ms: int | None,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: bytes | None,
    max_output: int | None,
    stream: bool,
    if_busy: str | None = None,
) -> dict[str, Any]:
    args: dict[str, Any] = {"command": command, "stream": stream, "stdin": stdin is not None}
    for name, value in (("timeout_ms", timeout_ms), ("cwd", cwd), ("max_output", max_output), ("if_busy", if_busy)):
        if value is not None:
            args[name] = value
    if env:
        args["env"] = dict(env)
    return args


def _read_args(path: str, offset: int, length: int | None) -> dict[str, Any]:
    args: dict[str, Any] = {"path": path, "offset": offset}
    if length is not None:
        args["length"] = length
    return args


def _exec_deadline_s(timeout_ms: int | None) -> float | None:
    """How long to wait for an exec's result: the runner ends the command at its timeout, so
    a runner silent well past it is stuck, not busy. No timeout (0) means no deadline."""
    timeout_ms = DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms
    return timeout_ms / 1000 + EXEC_GRACE_S if timeout_ms else None


class RunnerClient:
    """One connection to a sandbox's runner over its control socket: exec, files, kernel, terminal."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()
        self._ids = itertools.count(1)
        self.path = path
        self._handed_over = False  # the connection is a terminal's now (open_terminal)

    @classmethod
    async def connect(cls, path: str, timeout: float = 10.0) -> RunnerClient:
        """Connect to the socket at ``path`` and exchange ``hello``; retries until ``timeout``
        so a caller can connect to a sandbox that is still starting.

        ``path`` names a socket in a run directory, which the sandbox controls: it
        is reached through a checked descriptor, never by following a link there
        (``run_dir_names``).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                with checked_socket_path(path) as checked:
                    reader, writer = await asyncio.open_unix_connection(checked, limit=_STREAM_LIMIT)
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                if loop.time() >= deadline:
                    raise RunnerUnavailable("no runner answers at %s: %s" % (path, exc)) from None
                await asyncio.sleep(0.01)
            except OSError as exc:
                raise RunnerUnavailable("cannot connect to %s: %s" % (path, exc)) from None
        sock = writer.get_extra_info("socket")
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, _SOCKET_BUFFER_BYTES)
        client = cls(reader, writer, path)
        try:
            await client.request("hello", {"version": PROTOCOL_VERSION}, within_s=HELLO_DEADLINE_S)
        except BaseException:
            client.close_nowait()
            raise
        return client

    def open_runner_pidfd(self) -> int | None:
        """A pidfd of the runner at the other end (``sandbox_init``); None where the host cannot say."""
        sock = self._writer.get_extra_info("socket")
        return None if sock is None else open_init_pidfd(sock)

    @property
    def usable(self) -> bool:
        """Neither side has closed the connection (checked without I/O)."""
        return not self._handed_over and not self._writer.is_closing() and not self._reader.at_eof()

    def close_nowait(self) -> None:
        """Close the connection without waiting (a no-op once a terminal has it)."""
        if not self._handed_over:
            self._writer.close()

    async def close(self) -> None:
        """Close the connection and wait until it is closed (a no-op once a terminal has it)."""
        if self._handed_over:
            return
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> RunnerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- framing --------------------------------------------------------------

    async def _read_frame(self, sink: Sink | None = None) -> tuple[Message, bytes]:
        return await read_frame(self._reader, self.path, sink)

    async def _send(self, message: Message, payload: Payload) -> None:
        if not isinstance(payload, list):
            self._writer.write(encode_frame(message, payload))
            await self._writer.drain()
            return
        self._writer.write(encode_head(message, sum(len(piece) for piece in payload)))
        for piece in payload:  # each as it is: the transport copies only what the socket cannot take yet
            self._writer.write(piece)
            await self._writer.drain()

    async def frames(
        self,
        op: str,
        args: Mapping[str, Any],
        payload: Payload = b"",
        *,
        within_s: float | None = None,
        sink: Sink | None = None,
    ) -> AsyncIterator[tuple[Message, bytes]]:
        """Send one request and yield every reply frame, the final one last.

        Error replies raise ``RunnerRequestError``. With ``within_s``, a runner
        that has not finished replying by then (frozen, say) raises
        ``RunnerUnavailable`` instead of hanging the caller. With ``sink``, the
        result's payload goes to it as it arrives (``read_frame``).
        """
        deadline = None if within_s is None else asyncio.get_running_loop().time() + within_s
        async with self._lock:
            if self._handed_over or self._writer.is_closing():
                raise RunnerUnavailable("the connection to %s is closed" % self.path)
            request_id = next(self._ids)
            try:
                await self._send({"id": request_id, "op": op, "args": dict(args)}, payload)
            except OSError as exc:
                raise RunnerUnavailable("connection to %s failed: %s" % (self.path, exc)) from None
            finished = False
            try:
                while True:
                    message, data = await self._read_frame_by(deadline, sink)
                    kind = message.get("type")
                    if kind == "error":
                        finished = True
                        raise _request_error(message)
                    if message.get("id") != request_id:
                        raise RunnerUnavailable(
                            "reply for request %r while waiting for %r" % (message.get("id"), request_id)
                        )
                    finished = kind == "result"
                    yield message, data
                    if finished:
                        return
            finally:
                if not finished:
                    # The caller stopped reading mid-reply (or the stream broke):
                    # the rest of the reply would desynchronize the connection.
                    # Closing it also tells the runner to stop a streaming exec.
                    self._writer.close()

    async def _read_frame_by(self, deadline: float | None, sink: Sink | None = None) -> tuple[Message, bytes]:
        """The next frame, or ``RunnerUnavailable`` once ``deadline`` (loop time) passes.

        The deadline aborts the connection rather than cancelling a read task:
        ``asyncio.wait_for`` (before Python 3.12) returns the result of a read
        that finishes just as the caller is cancelled, losing the cancellation,
        and a kernel shutdown whose wait for the kernel is cancelled that way
        polls forever.
        """
        if deadline is None:
            return await self._read_frame(sink)
        stalled = False

        def give_up() -> None:
            nonlocal stalled
            stalled = True
            self._writer.transport.abort()  # the read ends at once; the connection is useless now

        timer = asyncio.get_running_loop().call_at(deadline, give_up)
        try:
            return await self._read_frame(sink)
        except RunnerUnavailable:
            if stalled:
                raise RunnerUnavailable(
                    "the runner at %s stopped answering (is the sandbox frozen?)" % self.path
                ) from None
            raise
        finally:
            timer.cancel()

    async def request(
        self,
        op: str,
        args: Mapping[str, Any] | None = None,
        payload: Payload = b"",
        *,
        within_s: float | None = None,
        sink: Sink | None = None,
    ) -> tuple[dict[str, Any], bytes]:
        """One request and its result. Without ``within_s`` the op's deadline applies (OP_DEADLINES_S)."""
        if within_s is None and op != "exec":
            within_s = OP_DEADLINES_S.get(op, CALL_DEADLINE_S)
        async for message, data in self.frames(op, args or {}, payload, within_s=within_s, sink=sink):
            if message.get("type") == "result":
                return message["result"], data
        raise RunnerUnavailable("the runner sent no result for %s" % op)

    # -- ops ------------------------------------------------------------------

    async def exec(
        self,
        command: str,
        *,
        timeout_ms: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        max_output: int | None = None,
        if_busy: str | None = None,
    ) -> ExecResult:
        """Run ``command`` in the sandbox's shell and wait for its whole output and result.

        ``if_busy="process"``: while another exec has the shell, run it as a process beside it.
        """
        args = _exec_args(command, timeout_ms, cwd, env, stdin, max_output, stream=False, if_busy=if_busy)
        result, output = await self.request("exec", args, stdin or b"", within_s=_exec_deadline_s(timeout_ms))
        return ExecResult.from_reply(result, output.decode("utf-8"))

    async def exec_stream(
        self,
        command: str,
        *,
        timeout_ms: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        max_output: int | None = None,
        if_busy: str | None = None,
    ) -> AsyncIterator[str | ExecResult]:
        """Yield output text as it comes, then the ``ExecResult`` (its output
        holds everything that was streamed)."""
        args = _exec_args(command, timeout_ms, cwd, env, stdin, max_output, stream=True, if_busy=if_busy)
        chunks: list[str] = []
        async for message, data in self.frames("exec", args, stdin or b"", within_s=_exec_deadline_s(timeout_ms)):
            if message["type"] == "output":
                text = data.decode("utf-8")
                chunks.append(text)
                yield text
            elif message["type"] == "result":
                yield ExecResult.from_reply(message["result"], "".join(chunks))

    async def write(self, path: str, data: Payload, *, mode: int = 0o644, append: bool = False) -> dict[str, Any]:
        """Write (or append) ``data`` (bytes, or pieces in order) to the file at ``path``; its resolved
        ``path`` and new ``size``."""
        result, _ = await self.request("write", {"path": path, "mode": mode, "append": append}, data)
        return result

    async def read(self, path: str, *, offset: int = 0, length: int | None = None) -> bytes:
        """The file's bytes from ``offset``, ``length`` of them at most (to the end without it)."""
        _, data = await self.request("read", _read_args(path, offset, length))
        return data

    async def read_to(self, path: str, sink: Sink, *, offset: int = 0, length: int | None = None) -> int:
        """As ``read``, but the bytes go to ``sink`` piece by piece as they arrive; how many there were."""
        count = 0

        def take(piece: bytes) -> None:
            nonlocal count
            count += len(piece)
            sink(piece)

        await self.request("read", _read_args(path, offset, length), sink=take)
        return count

    async def list_page(self, path: str = ".", after: str | None = None) -> dict[str, Any]:
        """Up to the runner's page size of entries after the name ``after``; ``truncated``: more follow."""
        args = {"path": path} if after is None else {"path": path, "after": after}
        result, _ = await self.request("list", args)
        return result

    async def list(self, path: str = ".") -> list[dict[str, Any]]:
        """Every entry of the directory, page by page."""
        entries: list[dict[str, Any]] = []
        after = None
        while True:
            page = await self.list_page(path, after)
            entries.extend(page["entries"])
            if not page["truncated"] or not page["entries"]:
                return entries
            after = page["entries"][-1]["name"]

    async def stat(self, path: str) -> dict[str, Any]:
        """The entry at ``path`` (a symlink itself, not its target): type, size, mode and mtime."""
        return (await self.request("stat", {"path": path}))[0]

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove the file or directory at ``path`` (a non-empty directory only with ``recursive``)."""
        await self.request("remove", {"path": path, "recursive": recursive})

    async def mkdir(self, path: str) -> None:
        """Make the directory ``path`` and any missing parents (``mkdir -p``)."""
        await self.request("mkdir", {"path": path})

    async def health(self) -> dict[str, Any]:
        """The runner's health report: processes, memory, CPU time, uptime, shell and kernel."""
        return (await self.request("health"))[0]

    async def usage(self) -> dict[str, Any]:
        """Processes, memory and CPU time of the sandbox, and when they were read."""
        return (await self.request("usage"))[0]

    async def kernel_start(self, connection: Mapping[str, Any], *, wait_ready: bool = True) -> dict[str, Any]:
        """Start the sandbox's kernel on ``connection`` (by default until its sockets exist); its status."""
        return (await self.request("kernel_start", {"connection": dict(connection), "wait_ready": wait_ready}))[0]

    async def kernel_interrupt(self) -> dict[str, Any]:
        """Send SIGINT to the sandbox's kernel; its status."""
        return (await self.request("kernel_interrupt"))[0]

    async def kernel_restart(self, *, wait_ready: bool = True) -> dict[str, Any]:
        """Stop the kernel and start it again with the same connection info; its status."""
        return (await self.request("kernel_restart", {"wait_ready": wait_ready}))[0]

    async def kernel_shutdown(self) -> dict[str, Any]:
        """Stop the kernel if there is one, keeping its connection info for a restart; its status."""
        return (await self.request("kernel_shutdown"))[0]

    async def kernel_status(self) -> dict[str, Any]:
        """The kernel's status: whether it started and is alive, its pid, restarts and exit."""
        return (await self.request("kernel_status"))[0]

    async def set_env(self, env: Mapping[str, str]) -> dict[str, Any]:
        """Put ``env`` over the runner's environment for what it starts from now on (PROTOCOL.md section 17)."""
        return (await self.request("set_env", {"env": dict(env)}))[0]

    async def restore(self, target: str, pieces: AsyncIterator[bytes]) -> dict[str, Any]:
        """Unpack a tar archive, sent as ``pieces``, into the sandbox's ``target`` (home, tmp or workspace).

        The archive follows the request as frames of its own, an empty one last
        (PROTOCOL.md); the runner replies once it has taken them all.
        """
        async with self._lock:
            if self._handed_over or self._writer.is_closing():
                raise RunnerUnavailable("the connection to %s is closed" % self.path)
            request_id = next(self._ids)
            piece_head = {"id": request_id, "op": "restore_piece"}
            try:

                async def send_archive() -> None:
                    await self._send({"id": request_id, "op": "restore", "args": {"target": target}}, b"")
                    async for piece in pieces:
                        if piece:
                            await self._send(piece_head, piece)
                    await self._send(piece_head, b"")

                # A runner that stops taking pieces would hold the sender forever.
                await asyncio.wait_for(send_archive(), RESTORE_DEADLINE_S)
                message, _ = await self._read_frame_by(asyncio.get_running_loop().time() + CALL_DEADLINE_S)
            except asyncio.TimeoutError:
                self._writer.close()
                raise RunnerUnavailable(
                    "restore into %s: the runner did not take the archive within %d s" % (self.path, RESTORE_DEADLINE_S)
                ) from None
            except OSError as exc:
                self._writer.close()
                raise RunnerUnavailable("restore into %s failed: %s" % (self.path, exc)) from None
            except BaseException:
                self._writer.close()  # mid-archive: the connection is out of step
                raise
            if message.get("type") != "result" or message.get("id") != request_id:
                raise _request_error(message)
            return dict(message["result"])

    async def open_terminal(self, rows: int, cols: int) -> RunnerTerminal:
        """An interactive bash on a PTY of its own. The connection becomes the terminal's:
        this client is closed for requests from here on."""
        async with self._lock:
            request_id = next(self._ids)
            self._writer.write(encode_frame({"id": request_id, "op": "terminal", "args": {"rows": rows, "cols": cols}}))
            try:
                await self._writer.drain()
                message, _ = await self._read_frame_by(asyncio.get_running_loop().time() + CALL_DEADLINE_S)
            except (OSError, RunnerUnavailable):
                self._writer.close()
                raise
            if message.get("type") != "started":
                self._writer.close()
                raise _request_error(message)
            self._handed_over = True
            return RunnerTerminal(self._reader, self._writer, int(message["pid"]))


def _request_error(message: Message) -> RunnerRequestError:
    """The error a reply other than the one expected stands for."""
    error = dict(message.get("error") or {})
    if message.get("type") != "error":
        error = {"code": "internal", "message": "unexpected reply %r" % message.get("type")}
    return RunnerRequestError(error.pop("code", "internal"), error.pop("message", ""), error)
