"""The control server: accepts connections on control.sock and dispatches ops.

One thread per connection; requests on a connection are answered in order.
Every failure becomes an error reply: a bad frame never ends the runner, and
only a frame whose lengths cannot be trusted ends its connection.
"""

import codecs
import contextlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

from . import __version__, errors
from .errors import RunnerError
from .files import Workspace
from .health import oom_kills, sandbox_usage
from .job_ops import JobOps
from .jobs import Jobs
from .kernel import Kernels
from .processes import ChildRegistry, descendants, kill_session
from .protocol import (
    DEFAULT_TIMEOUT_MS,
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    Incoming,
    Message,
    PayloadCut,
    ProtocolError,
    decode_message,
    encode_head,
    error_message,
    read_head,
)
from .request import Reply, Request, Send
from .restore import RUNNER_SCRATCH_PREFIX, drain_archive, restore
from .shell import ExecCancelled, Shell
from .terminal import Terminal

DEFAULT_MAX_OUTPUT = 1 << 20
# Ops that take their payload as it arrives (Request.incoming) instead of whole (Request.payload).
STREAMED_OPS = frozenset({"write"})
# A payload up to this size is sent in one piece with its frame's head; a larger one after it.
JOINED_PAYLOAD_BYTES = 1 << 16
# Socket buffers of a connection: a file moves in fewer, larger steps (the system may allow less).
SOCKET_BUFFER_BYTES = 1 << 20
# Decoding may triple invalid bytes (U+FFFD); the result must fit one payload.
MAX_OUTPUT_LIMIT = 16 << 20


class Runner:
    """PID 1's state: the shell, the kernel, the workspace, and the control socket."""

    def __init__(self, run_dir: str, workspace: str, scratch_dir: str, registry: ChildRegistry) -> None:
        self.run_dir = run_dir
        self.socket_path = os.path.join(run_dir, "control.sock")
        self.started_at = time.time()
        self._registry = registry
        env = {k: v for k, v in os.environ.items() if not k.startswith("SANDKASTEN_RUNNER_")}
        self._env = env
        self._terminals: Set[Terminal] = set()  # open ones: stop() must end them too
        self.workspace = Workspace(workspace)
        self.shell = Shell(registry, self.workspace.root, os.path.join(scratch_dir, "shell"), env)
        self.kernels = Kernels(registry, run_dir, self.workspace.root, os.path.join(scratch_dir, "kernel"), env)
        self.jobs = Jobs(registry, self.workspace.root, env)
        self._job_ops = JobOps(self.jobs, self.workspace)
        self._exec_lock = threading.Lock()
        self._listener: Optional[socket.socket] = None
        self._ops: Dict[str, Callable[[Request], Reply]] = {
            "hello": self._hello,
            "health": self._health,
            "exec": self._exec,
            "write": self._write,
            "read": self._read,
            "list": lambda r: (self.workspace.list(r.arg("path", str, "."), after=r.arg("after", str)), b""),
            "stat": lambda r: (self.workspace.stat(r.arg("path", str, required=True)), b""),
            "remove": lambda r: (
                self.workspace.remove(r.arg("path", str, required=True), r.arg("recursive", bool, False)),
                b"",
            ),
            "mkdir": lambda r: (
                self.workspace.mkdir(r.arg("path", str, required=True), r.mode(0o755)),
                b"",
            ),
            "kernel_start": lambda r: (
                self.kernels.start(
                    r.arg("name", str, ""), r.arg("connection", dict, required=True), r.arg("wait_ready", bool, True)
                ),
                b"",
            ),
            "kernel_interrupt": lambda r: (self.kernels.get(r.arg("name", str, "")).interrupt(), b""),
            "kernel_restart": lambda r: (
                self.kernels.get(r.arg("name", str, "")).restart(r.arg("wait_ready", bool, True)),
                b"",
            ),
            "kernel_shutdown": lambda r: (self.kernels.shutdown(r.arg("name", str, "")), b""),
            "kernel_status": lambda r: (self.kernels.status(r.arg("name", str, "")), b""),
            "terminal": self._terminal,
            "restore": self._restore,
            "set_env": self._set_env,
            # Cheap, unlike health (which waits for kernel ops): the dashboard polls it.
            "usage": lambda r: (dict(sandbox_usage(), sampled_at=time.time()), b""),
            **self._job_ops.table(),
        }

    # -- socket ---------------------------------------------------------------

    def listen(self) -> None:
        """Bind the control socket (owner only) and accept connections on a background thread."""
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept_loop, name="accept", daemon=True).start()

    def stop(self, grace: float) -> None:
        """Stop serving; SIGTERM every process of the sandbox, SIGKILL what is left after ``grace`` s."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            os.unlink(self.socket_path)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            self._signal_everything(sig)
            deadline = time.monotonic() + grace
            while descendants(os.getpid()) and time.monotonic() < deadline:
                self._registry.reap()
                time.sleep(0.02)
        for kernel in self.kernels.everyone():
            kernel.shutdown()
        self.shell.close()

    def _signal_everything(self, sig: int) -> None:
        if os.getpid() == 1:  # every process in the container but us
            with contextlib.suppress(ProcessLookupError):
                os.kill(-1, sig)
            return
        terminals = [t.pid for t in list(self._terminals)]
        kernels = [k.pid for k in self.kernels.everyone()]
        for leader in (self.shell.pid, *kernels, *terminals, *self.jobs.running_pids()):
            if leader is not None:
                kill_session(leader, sig)

    def _accept_loop(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            try:
                threading.Thread(target=self._serve, args=(conn,), name="conn", daemon=True).start()
            except RuntimeError:  # no thread to be had (the pids limit is used up): refuse, keep accepting
                conn.close()
                time.sleep(0.05)

    def _serve(self, conn: socket.socket) -> None:
        send_lock = threading.Lock()
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)

        def send(message: Message, payload: bytes = b"") -> None:
            head = encode_head(message, len(payload))
            with send_lock:
                if len(payload) <= JOINED_PAYLOAD_BYTES:
                    conn.sendall(head + payload)
                else:
                    conn.sendall(head)
                    conn.sendall(payload)

        with conn:
            while True:
                try:
                    head = read_head(conn)
                    if head is None:
                        return
                    body, incoming = head
                    try:
                        message = decode_message(body)
                    except ProtocolError:
                        incoming.skip()
                        raise
                    op = message.get("op")
                    streamed = isinstance(op, str) and op in STREAMED_OPS
                    payload = b"" if streamed else incoming.read()
                except ProtocolError as exc:
                    try:
                        send(error_message(None, exc.code, exc.message), b"")
                    except OSError:
                        return
                    if exc.fatal:
                        return
                    continue
                except OSError:
                    return
                try:
                    self._dispatch(message, payload, send, conn, incoming if streamed else None)
                except OSError:
                    return  # the client went away mid-reply

    def _dispatch(
        self, message: Message, payload: bytes, send: Send, conn: socket.socket, incoming: Optional[Incoming] = None
    ) -> None:
        """Answer one request. Only a failure to send (the client left) escapes.

        A streamed payload (``incoming``) is taken whole before the reply, whatever the op did
        with it; a connection that ends in the middle of it is closed without one.
        """
        request_id = message.get("id")
        try:
            try:
                request = Request(message, payload, send, conn, incoming)
                handler = self._ops.get(request.op) if isinstance(request.op, str) else None
                if handler is None:
                    raise RunnerError(
                        errors.UNKNOWN_OP, "unknown op %r; known ops: %s" % (request.op, ", ".join(sorted(self._ops)))
                    )
                result, data = handler(request)
            finally:
                if incoming is not None:
                    incoming.skip()
        except PayloadCut as exc:
            raise OSError(exc.message) from None
        except RunnerError as exc:
            send(error_message(request_id, exc.code, exc.message, **exc.details), b"")
            return
        except ExecCancelled:
            raise OSError("the client went away during exec") from None
        except OSError as exc:
            send(error_message(request_id, errors.IO_ERROR, "%s failed: %s" % (message.get("op"), exc)), b"")
            return
        except Exception as exc:  # a bug must cost one reply, not the runner
            traceback.print_exc(file=sys.stderr)
            send(error_message(request_id, errors.INTERNAL, "%s: %s" % (type(exc).__name__, exc)), b"")
            return
        send({"id": request_id, "type": "result", "result": result}, data)

    # -- ops ------------------------------------------------------------------

    def _hello(self, request: Request) -> Reply:
        version = request.arg("version", int, PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            raise RunnerError(
                errors.UNSUPPORTED_VERSION,
                "client speaks protocol %d, this runner speaks %d" % (version, PROTOCOL_VERSION),
                supported=[PROTOCOL_VERSION],
            )
        return {"protocol": PROTOCOL_VERSION, "runner": __version__, "ops": sorted(self._ops)}, b""

    def _health(self, request: Request) -> Reply:
        result: Dict[str, Any] = dict(sandbox_usage())
        result["uptime_s"] = round(time.time() - self.started_at, 3)
        result["shell"] = {
            "alive": self.shell.alive(),
            "pid": self.shell.pid,
            "busy": self._exec_lock.locked(),
            "restarts": self.shell.restarts,
            "last_exit": self.shell.last_exit,
        }
        result["kernel"] = self.kernels.default.status()
        result["named_kernels"] = self.kernels.named_status()
        result["processes_running"] = len(self.jobs.running_pids())
        return result, b""

    def _set_env(self, request: Request) -> Reply:
        """The session's variables, over the runner's own, for what it starts from now on (section 17)."""
        env = request.env()
        self._env.update(env)  # the dict the kernels, processes and terminals start with
        return {"variables": len(env)}, b""

    def _exec(self, request: Request) -> Reply:
        command = request.arg("command", str, required=True)
        timeout_ms = request.count("timeout_ms", DEFAULT_TIMEOUT_MS)
        cwd = request.cwd(self.workspace)
        env = request.env()
        max_output = request.count("max_output", DEFAULT_MAX_OUTPUT) or 0
        stream = request.arg("stream", bool, False)
        stdin = request.payload if request.arg("stdin", bool, False) else None
        if max_output > MAX_OUTPUT_LIMIT:
            raise RunnerError(errors.BAD_REQUEST, "max_output may be at most %d bytes" % MAX_OUTPUT_LIMIT)

        if_busy = request.arg("if_busy", str, "error")
        if if_busy not in ("error", "process"):
            raise RunnerError(errors.BAD_REQUEST, "if_busy must be 'error' or 'process'")
        collected = _OutputCollector(max_output, request.send if stream else None, request.id)
        oom_before = oom_kills()
        started = time.monotonic()
        if self._exec_lock.acquire(blocking=False):
            try:
                outcome = self.shell.exec(
                    command,
                    collected.feed,
                    timeout=(timeout_ms or 0) / 1000.0 or None,
                    cwd=cwd,
                    env=env,
                    stdin=stdin,
                    client=request.conn,
                )
            finally:
                self._exec_lock.release()
        elif if_busy == "process":
            outcome = self._job_ops.exec_beside(request, command, timeout_ms, cwd, env, stdin, collected.feed)
        else:
            raise RunnerError(errors.SHELL_BUSY, "another exec is running in this shell")
        duration_ms = round((time.monotonic() - started) * 1000, 3)
        summary, output = collected.finish()
        result = dict(outcome)
        result.update(summary)
        result["duration_ms"] = duration_ms
        result.setdefault("ran_as", "shell")
        oom_after = oom_kills()
        # The kernel killed something for memory while this command ran: say so, since
        # "exit 137" alone reads like any SIGKILL.
        result["oom_killed"] = oom_before is not None and oom_after is not None and oom_after > oom_before
        return result, output

    def _terminal(self, request: Request) -> Reply:
        """An interactive bash on a PTY of its own; the connection is the terminal's until it ends."""
        rows = request.count("rows", 24) or 0
        cols = request.count("cols", 80) or 0
        terminal = Terminal(self._registry, self.workspace.root, self._env)
        pid = terminal.start(rows, cols)
        self._terminals.add(terminal)
        try:
            request.send({"id": request.id, "type": "started", "pid": pid}, b"")
            return terminal.serve(request.id, request.conn, request.send), b""
        finally:
            terminal.close()
            self._terminals.discard(terminal)

    def _restore(self, request: Request) -> Reply:
        """Unpack the archive that follows the request (a frame per piece, an empty one last)
        into the home directory, /tmp or the workspace; a restored home gets a fresh shell,
        so bash reads its dotfiles."""
        target = request.arg("target", str, required=True)
        roots = {"home": os.path.expanduser("~"), "tmp": "/tmp", "workspace": self.workspace.root}
        if target not in roots:
            drain_archive(request.conn)  # the archive's frames follow regardless: the reply must come after them
            raise RunnerError(errors.BAD_REQUEST, "target must be one of %s" % ", ".join(sorted(roots)))
        counts = restore(request.conn, roots[target], RUNNER_SCRATCH_PREFIX if target == "tmp" else None)
        if target == "home":
            with self._exec_lock:
                self.shell.restart("its home directory was restored")
        return counts, b""

    def _write(self, request: Request) -> Reply:
        path = request.arg("path", str, required=True)
        mode = request.mode(0o644)
        data = request.incoming if request.incoming is not None else request.payload
        return self.workspace.write(path, data, mode=mode, append=request.arg("append", bool, False)), b""

    def _read(self, request: Request) -> Reply:
        return self.workspace.read(
            request.arg("path", str, required=True),
            offset=request.count("offset", 0) or 0,
            length=request.count("length", None),
            limit=MAX_PAYLOAD_BYTES,
        )


class _OutputCollector:
    """Caps an exec's output, decodes it as UTF-8, and streams it when asked."""

    def __init__(self, cap: int, send: Optional[Send], request_id: Any) -> None:
        self._cap = cap
        self._send = send
        self._request_id = request_id
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._kept: List[str] = []
        self._total = 0

    def feed(self, data: bytes) -> None:
        room = self._cap - min(self._total, self._cap)
        self._total += len(data)
        if room <= 0:
            return
        text = self._decoder.decode(data[:room], final=self._total >= self._cap)
        if not text:
            return
        if self._send is None:
            self._kept.append(text)
            return
        try:
            self._send({"id": self._request_id, "type": "output"}, text.encode("utf-8"))
        except OSError as exc:
            raise ExecCancelled("the client went away") from exc

    def finish(self) -> Tuple[Dict[str, Any], bytes]:
        """The result fields, and the output (UTF-8) unless it was streamed."""
        tail = self._decoder.decode(b"", final=True)
        if tail and self._send is not None:
            self._send({"id": self._request_id, "type": "output"}, tail.encode("utf-8"))
        summary: Dict[str, Any] = {"truncated": self._total > self._cap, "output_bytes": self._total}
        if self._send is not None:
            return summary, b""
        return summary, ("".join(self._kept) + tail).encode("utf-8")
