"""Interactive terminals: a second (third, ...) ``bash -l`` on a PTY of its own, for a person.

The ``terminal`` op takes over its connection until the terminal ends. The
runner streams the PTY's output in ``output`` frames (raw bytes, not
necessarily UTF-8) after a ``started`` frame; the client sends
``terminal_input`` (payload: bytes to type), ``terminal_resize`` (``rows``,
``cols``) and ``terminal_close`` frames on the same connection. The op ends
with one ``result`` (``exit_code``) when bash exits, the client sends
``terminal_close`` or the client closes the connection.

Whatever way it ends, every process of the terminal's session gets SIGKILL:
nothing a person started there outlives the terminal. The exec shell is
another session and is never touched.
"""

import contextlib
import fcntl
import os
import select
import socket
import struct
import termios
from typing import Any, Callable, Dict, List, Optional

from . import errors
from .errors import RunnerError
from .processes import Child, ChildRegistry, fork_exec, kill_session
from .protocol import Message, ProtocolError, read_frame

MAX_SIZE = 1000  # rows or columns
READ_CHUNK = 1 << 16
# How long the runner waits for bash to be reaped after the SIGKILL.
EXIT_WAIT_SECONDS = 2.0

Send = Callable[[Message, bytes], None]


def check_size(rows: int, cols: int) -> None:
    """Refuse a terminal size outside 1 to MAX_SIZE rows and columns."""
    if not (1 <= rows <= MAX_SIZE and 1 <= cols <= MAX_SIZE):
        raise RunnerError(errors.BAD_REQUEST, "rows and cols must be from 1 to %d" % MAX_SIZE)


def set_size(fd: int, rows: int, cols: int) -> None:
    """Set the window size of the PTY ``fd``."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """One interactive bash on its own PTY, served over one control connection."""

    def __init__(self, registry: ChildRegistry, workspace: str, env: Dict[str, str]) -> None:
        self._registry = registry
        self._workspace = workspace
        self._env = dict(env)
        self._env["TERM"] = "xterm-256color"
        self._child: Optional[Child] = None
        self._master = -1

    @property
    def pid(self) -> Optional[int]:
        """The terminal's bash pid, or None before it is started."""
        return self._child.pid if self._child else None

    def start(self, rows: int, cols: int) -> int:
        """Start bash on a new PTY; returns its pid."""
        check_size(rows, cols)
        master, slave = os.openpty()
        try:
            set_size(slave, rows, cols)
            argv = ["bash", "-l"]
            self._child = self._registry.spawn(
                lambda: fork_exec(argv, self._env, self._workspace, (slave, slave, slave), controlling_tty=slave)
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # only bash holds it now: its end shows as EIO on the master
        os.set_blocking(master, False)
        self._master = master
        return self._child.pid

    def serve(self, request_id: Any, conn: socket.socket, send: Send) -> Dict[str, Any]:
        """Pass output to the client and its input to bash until one side ends; then clean up."""
        assert self._child is not None
        try:
            self._pump(request_id, conn, send)
        finally:
            self.close()
        return {"exit_code": self._child.returncode}

    def _pump(self, request_id: Any, conn: socket.socket, send: Send) -> None:
        assert self._child is not None
        while True:
            watched: List[Any] = [self._master, conn]
            ready, _, _ = select.select(watched, [], [], 0.25)
            if self._master in ready:
                try:
                    data = os.read(self._master, READ_CHUNK)
                except BlockingIOError:
                    data = None
                except OSError:  # EIO: bash and everything on its terminal are gone
                    return
                if data == b"":
                    return
                if data:
                    send({"id": request_id, "type": "output"}, data)
            if conn in ready and not self._on_client_frame(conn):
                return
            if not ready and self._child.exited.is_set():
                return

    def _on_client_frame(self, conn: socket.socket) -> bool:
        """Act on one frame from the client; False when the terminal should end."""
        try:
            frame = read_frame(conn)
        except (ProtocolError, OSError):
            return False
        if frame is None:
            return False  # the client closed the connection
        message, payload = frame
        op = message.get("op")
        args = message.get("args") or {}
        if op == "terminal_input":
            self._type(payload)
        elif op == "terminal_resize" and isinstance(args, dict):
            rows, cols = args.get("rows"), args.get("cols")
            if isinstance(rows, int) and isinstance(cols, int):
                with contextlib.suppress(RunnerError, OSError):
                    check_size(rows, cols)
                    set_size(self._master, rows, cols)
        elif op == "terminal_close":
            return False
        return True  # anything else on a terminal connection is ignored

    def _type(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._master, view)
            except BlockingIOError:
                select.select([], [self._master], [], 1.0)
                continue
            except OSError:
                return  # the terminal is gone; the pump notices
            view = view[written:]

    def close(self) -> None:
        """Kill every process of the terminal's session; safe to call more than once."""
        child = self._child
        if child is not None:
            kill_session(child.pid)
            child.exited.wait(EXIT_WAIT_SECONDS)
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
