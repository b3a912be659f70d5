"""The persistent ``bash -l`` on a PTY, and exec on top of it.

Each exec writes the command to a file and types one short line into the PTY::

     builtin source <wrapper>; builtin printf '\\036SK:<token>:%d\\036' $?

The wrapper applies the per-exec cwd and env, sources the command with stdin
from a file, and restores cwd and env. Typing only that line keeps the command
text out of the tty's line discipline (no 4 KiB line limit, no special
characters) and out of the shell's stdin. The sentinel after it carries the exit
code; the token is fresh per exec, so stale output can never end an exec.

Echo is off and the prompts are empty, so the output is exactly what the
command printed. Job control is on: every foreground command gets its own
process group, which is what a timeout kills, leaving the shell alive.
"""

import contextlib
import fcntl
import os
import secrets
import select
import shlex
import signal
import socket
import struct
import termios
import time
from typing import Any, Callable, Dict, List, Optional

from . import errors
from .errors import RunnerError
from .processes import Child, ChildRegistry, fork_exec, kill_session

SENTINEL_START = b"\x1eSK:"
SENTINEL_END = b"\x1e"
ENV_NAME_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# Output of a timed-out command after the interrupt is thrown away, but the
# shell has this long to come back before it is replaced.
RESYNC_SECONDS = 3.0
STARTUP_SECONDS = 20.0

OutputCallback = Callable[[bytes], None]


def valid_env_name(name: str) -> bool:
    """Whether ``name`` can be exported as an environment variable by bash."""
    return bool(name) and not name[0].isdigit() and set(name) <= ENV_NAME_CHARS


class ExecCancelled(Exception):
    """Raised by an output callback whose client went away; the command is stopped."""


def hung_up(client: socket.socket) -> bool:
    """Whether the peer of a readable socket has closed it."""
    try:
        return client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


class ShellExited(Exception):
    """The shell process ended during an exec (``exit`` was typed, or it was killed)."""


class Shell:
    """One bash on one PTY. Not thread-safe: the caller serializes execs."""

    def __init__(self, registry: ChildRegistry, workspace: str, scratch_dir: str, env: Dict[str, str]) -> None:
        self._registry = registry
        self._workspace = workspace
        self._scratch = scratch_dir
        self._env = env
        self._child: Optional[Child] = None
        self._master = -1
        self._slave = -1
        self.started_at = 0.0
        self.restarts = 0
        self.last_exit: Optional[str] = None

    # -- lifecycle ---------------------------------------------------------

    @property
    def pid(self) -> Optional[int]:
        """The shell's pid, or None when it is not started."""
        return self._child.pid if self._child else None

    def alive(self) -> bool:
        """Whether a shell was started and has not exited."""
        return self._child is not None and not self._child.exited.is_set()

    def start(self) -> None:
        """Start bash on a new PTY and wait until it answers; a RunnerError if it does not."""
        master, slave = os.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[1] &= ~termios.OPOST  # no \n -> \r\n translation
        attrs[3] &= ~(termios.ECHO | termios.ECHONL)  # no echo; line mode stays on
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        env = dict(self._env)
        env.setdefault("TERM", "dumb")
        argv = ["bash", "--noediting", "-l"]

        self._child = self._registry.spawn(
            lambda: fork_exec(argv, env, self._workspace, (slave, slave, slave), controlling_tty=slave)
        )
        self._master, self._slave = master, slave
        os.set_blocking(master, False)
        self.started_at = time.time()
        token = secrets.token_hex(8)
        # Empty prompts and no history: the output of an exec is only the command's.
        self._type(" PS1= PS2= PS0= PROMPT_COMMAND=; set +o history +H; " + self._sentinel_printf(token, "0"))
        try:
            self._wait_sentinel(token, time.monotonic() + STARTUP_SECONDS, None)
        except (ShellExited, TimeoutError) as exc:
            self.close()
            raise RunnerError(errors.SHELL_UNAVAILABLE, "bash did not start: %s" % exc) from None

    def close(self) -> None:
        """Kill the shell's session (its background jobs too) and close its PTY."""
        child = self._child
        if child is not None and not child.exited.is_set():
            kill_session(child.pid)
            child.exited.wait(2)
        elif child is not None:
            kill_session(child.pid)  # background jobs left in its session
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        self._child = None

    def restart(self, reason: str) -> None:
        """Start a fresh shell, keeping ``reason`` as why the last one ended."""
        self.last_exit = reason
        self.close()
        self.restarts += 1
        self.start()

    # -- exec --------------------------------------------------------------

    def exec(
        self,
        command: str,
        on_output: OutputCallback,
        timeout: Optional[float] = None,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        stdin: Optional[bytes] = None,
        client: Optional[socket.socket] = None,
    ) -> Dict[str, object]:
        """Run ``command``; ``on_output`` gets the raw output as it comes.

        ``client`` is the requesting connection: if it closes, the command is
        stopped as on a timeout and ``ExecCancelled`` is raised.

        Returns ``exit_code``, ``timed_out`` and, when the shell had to be
        replaced, ``shell_restarted`` with ``shell_exit`` saying why.
        """
        if not self.alive():
            self.restart(self._child.describe_exit() if self._child else "not started")
        self._drain()
        os.makedirs(self._scratch, mode=0o700, exist_ok=True)
        user_file = os.path.join(self._scratch, "command")
        stdin_file = os.path.join(self._scratch, "stdin") if stdin is not None else "/dev/null"
        wrapper_file = os.path.join(self._scratch, "wrapper")
        with open(user_file, "w", encoding="utf-8") as f:
            f.write(command)
            f.write("\n")
        if stdin is not None:
            with open(stdin_file, "wb") as f:
                f.write(stdin)
        with open(wrapper_file, "w", encoding="utf-8") as f:
            f.write(self._wrapper(user_file, stdin_file, cwd, env or {}))

        token = secrets.token_hex(8)
        self._type(" builtin source %s; %s" % (shlex.quote(wrapper_file), self._sentinel_printf(token, "$?")))
        deadline = time.monotonic() + timeout if timeout else None
        try:
            code = self._wait_sentinel(token, deadline, on_output, client)
            return {"exit_code": code, "timed_out": False}
        except TimeoutError:
            return self._recover_after_timeout()
        except ExecCancelled:
            self._recover_after_timeout()
            raise
        except ShellExited:
            assert self._child is not None
            reason = "the shell %s" % self._child.describe_exit()
            exit_code = self._child.returncode
            self.restart(reason)
            return {"exit_code": exit_code, "timed_out": False, "shell_restarted": True, "shell_exit": reason}
        finally:
            if stdin is not None:  # stdin data can be large, and /tmp is the sandbox's memory
                with contextlib.suppress(OSError):
                    os.unlink(stdin_file)

    @staticmethod
    def _sentinel_printf(token: str, status: str) -> str:
        return "builtin printf '\\036SK:%s:%%d\\036' %s" % (token, status)

    @staticmethod
    def _wrapper(user_file: str, stdin_file: str, cwd: Optional[str], env: Dict[str, str]) -> str:
        q = shlex.quote
        pre: List[str] = ["unset -f __sk_restore"]
        post: List[str] = []
        if cwd is not None:
            pre.append("__sk_pwd=$PWD; builtin cd -- %s || return 1" % q(cwd))
            post.append('builtin cd -- "$__sk_pwd"; unset __sk_pwd')
        for i, (name, value) in enumerate(env.items()):
            # Remember whether the name was set, so it is restored or unset after.
            pre.append(
                "if [[ -v %s ]]; then __sk_old%d=${%s}; __sk_had%d=1; else __sk_had%d=0; fi; export %s=%s"
                % (name, i, name, i, i, name, q(value))
            )
            post.append("if ((__sk_had%d)); then %s=$__sk_old%d; else unset %s; fi" % (i, name, i, name))
        if post:
            # A function, so that the resync after a timeout can restore too.
            pre.insert(1, "__sk_restore() {\n%s\nunset -f __sk_restore\n}" % "\n".join(post))
        lines = [*pre, "builtin source %s < %s" % (q(user_file), q(stdin_file)), "__sk_rc=$?"]
        if post:
            lines.append("__sk_restore")
        lines += ["return $__sk_rc", ""]
        return "\n".join(lines)

    def _type(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        while data:
            try:
                n = os.write(self._master, data)
            except BlockingIOError:
                select.select([], [self._master], [], 1.0)
                continue
            data = data[n:]

    def _drain(self) -> None:
        """Throw away output that arrived between execs (background jobs)."""
        while True:
            try:
                if not os.read(self._master, 65536):
                    return
            except (BlockingIOError, OSError):
                return

    def _wait_sentinel(
        self,
        token: str,
        deadline: Optional[float],
        on_output: Optional[OutputCallback],
        client: Optional[socket.socket] = None,
    ) -> int:
        """Pass output to ``on_output`` until the sentinel; return its exit code."""
        assert self._child is not None
        marker = SENTINEL_START + token.encode() + b":"
        pending = b""
        watched: List[Any] = [self._master] + ([client] if client is not None else [])
        while True:
            wait = 0.25
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise TimeoutError("no sentinel before the deadline")
            ready, _, _ = select.select(watched, [], [], wait)
            if client is not None and client in ready:
                if hung_up(client):
                    raise ExecCancelled("the client closed the connection")
                watched.remove(client)  # it sent more: that waits its turn
                ready.remove(client)
            if not ready:
                if self._child.exited.is_set():
                    if on_output and pending:
                        on_output(pending)
                    raise ShellExited()
                continue
            try:
                data = os.read(self._master, 1 << 16)
            except BlockingIOError:
                continue
            except OSError as exc:  # EIO: nobody holds the slave any more
                raise ShellExited() from exc
            pending += data
            start = pending.find(marker)
            if start >= 0:
                end = pending.find(SENTINEL_END, start + len(marker))
                if end >= 0:
                    if on_output and start:
                        on_output(pending[:start])
                    return int(pending[start + len(marker) : end])
                keep = start
            else:
                # Hold back a tail that may be the beginning of the sentinel.
                keep = len(pending)
                tail = pending.rfind(SENTINEL_START[:1], max(0, len(pending) - len(marker)))
                if tail >= 0 and marker.startswith(pending[tail:]):
                    keep = tail
            if on_output and keep:
                on_output(pending[:keep])
            pending = pending[keep:]

    def _recover_after_timeout(self) -> Dict[str, object]:
        """Kill the foreground command, then get the shell back to its prompt.

        The foreground process group gets SIGKILL; the shell itself gets SIGINT,
        which ends a loop running in the shell and drops the rest of the line.
        A resync line then proves the shell is listening again. If it is not
        back in time, it is replaced.
        """
        assert self._child is not None
        shell_pid = self._child.pid
        deadline = time.monotonic() + RESYNC_SECONDS
        while time.monotonic() < deadline and not self._child.exited.is_set():
            try:
                foreground = os.tcgetpgrp(self._master)
            except OSError:
                foreground = shell_pid
            if foreground != shell_pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(foreground, signal.SIGKILL)
            try:
                os.kill(shell_pid, signal.SIGINT)
            except ProcessLookupError:
                break
            termios.tcflush(self._slave, termios.TCIFLUSH)
            token = secrets.token_hex(8)
            self._type(" declare -F __sk_restore >/dev/null && __sk_restore; " + self._sentinel_printf(token, "0"))
            try:
                self._wait_sentinel(token, time.monotonic() + 0.2, None)
                return {"exit_code": None, "timed_out": True}
            except TimeoutError:
                continue
            except ShellExited:
                break
        reason = "the shell did not come back after the timeout"
        if self._child.exited.is_set():
            reason = "the shell %s after the timeout" % self._child.describe_exit()
        self.restart(reason)
        return {"exit_code": None, "timed_out": True, "shell_restarted": True, "shell_exit": reason}
