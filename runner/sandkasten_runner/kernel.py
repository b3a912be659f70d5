"""The sandbox's Jupyter kernels: ipykernel children the runner starts, interrupts and restarts.

The host sends the connection info (``transport: ipc``, ports, key). The runner
points ``ip`` at its own run directory, so the kernel's socket files appear in
the directory the host has bind-mounted, where the host connects to them.

Beside the sandbox's own kernel, the host may start named ones (``Kernels``):
E2B's code contexts, each a kernel with its own state over the same files.
A named kernel's files carry its name (``kernel-<name>-<port>``,
``kernel-<name>.json``), and its shutdown forgets it, so the name is free again.
"""

import collections
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Deque, Dict, List, Optional

from . import errors
from .errors import RunnerError
from .processes import Child, ChildRegistry, fork_exec, kill_session

SOCKET_NAMES = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
READY_SECONDS = 30.0
STOP_SECONDS = 3.0
LOG_TAIL_LINES = 40
KERNEL_NAME = re.compile(r"[a-z][a-z0-9]{0,15}\Z")
MAX_NAMED_KERNELS = 16  # beside the sandbox's own: the host asks for fewer (E2B's contexts: 8)


class Kernel:
    """One ipykernel: started, interrupted, restarted and shut down on request."""

    def __init__(
        self,
        registry: ChildRegistry,
        run_dir: str,
        workspace: str,
        scratch_dir: str,
        env: Dict[str, str],
        name: str = "",
    ) -> None:
        self.name = name
        self._stem = "kernel-%s" % name if name else "kernel"  # of its files' names
        self._registry = registry
        self._run_dir = run_dir
        self._workspace = workspace
        self._scratch = scratch_dir
        self._env = env
        self._lock = threading.Lock()
        self._child: Optional[Child] = None
        self._connection: Optional[Dict[str, Any]] = None
        self._started_at = 0.0
        self._restarts = 0
        self._log_path = os.path.join(scratch_dir, self._stem + ".log")

    @property
    def connection_file(self) -> str:
        """Where the kernel's connection file is written (in the run directory the host sees)."""
        return os.path.join(self._run_dir, self._stem + ".json")

    @property
    def pid(self) -> Optional[int]:
        """The kernel's pid, or None before it is started."""
        return self._child.pid if self._child else None

    def alive(self) -> bool:
        """Whether a kernel was started and has not exited."""
        return self._child is not None and not self._child.exited.is_set()

    # -- operations ---------------------------------------------------------

    def start(self, connection: Any, wait_ready: bool = True) -> Dict[str, Any]:
        """Start the kernel on ``connection`` (Jupyter connection info over ipc); returns its status."""
        with self._lock:
            if self.alive():
                raise RunnerError(errors.KERNEL_ALREADY_RUNNING, "the kernel is already running; restart it instead")
            self._connection = self._checked(connection)
            self._spawn(wait_ready)
            return self._status()

    def interrupt(self) -> Dict[str, Any]:
        """Send the running kernel SIGINT (as Jupyter's interrupt does); returns its status."""
        with self._lock:
            child = self._running()
            os.kill(child.pid, signal.SIGINT)
            return self._status()

    def restart(self, wait_ready: bool = True) -> Dict[str, Any]:
        """Stop the kernel and start it again on the same connection; returns its status."""
        with self._lock:
            if self._connection is None:
                raise RunnerError(errors.KERNEL_NOT_RUNNING, "no kernel was started, so there is none to restart")
            self._stop()
            self._restarts += 1
            self._spawn(wait_ready)
            return self._status()

    def shutdown(self) -> Dict[str, Any]:
        """Stop the kernel and whatever it started, if one runs; returns its status."""
        with self._lock:
            self._stop()
            return self._status()

    def status(self) -> Dict[str, Any]:
        """The kernel's status: pid, liveness, restarts and, once it has exited, how, with the tail of its log."""
        with self._lock:
            return self._status()

    # -- internals ------------------------------------------------------------

    def _checked(self, connection: Any) -> Dict[str, Any]:
        if not isinstance(connection, dict):
            raise RunnerError(errors.BAD_REQUEST, "connection must be an object (a Jupyter connection info)")
        if connection.get("transport") != "ipc":
            raise RunnerError(errors.BAD_REQUEST, "connection.transport must be 'ipc': sandboxes have no network")
        info: Dict[str, Any] = {"transport": "ipc", "ip": os.path.join(self._run_dir, self._stem)}
        for name in SOCKET_NAMES:
            port = connection.get(name)
            if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
                raise RunnerError(errors.BAD_REQUEST, "connection.%s must be an integer from 1 to 65535" % name)
            info[name] = port
        key = connection.get("key", "")
        scheme = connection.get("signature_scheme", "hmac-sha256")
        if not isinstance(key, str) or not isinstance(scheme, str):
            raise RunnerError(errors.BAD_REQUEST, "connection.key and connection.signature_scheme must be strings")
        info["key"] = key
        info["signature_scheme"] = scheme
        info["kernel_name"] = str(connection.get("kernel_name", "python3"))
        return info

    def _socket_paths(self) -> List[str]:
        assert self._connection is not None
        return ["%s-%d" % (self._connection["ip"], self._connection[name]) for name in SOCKET_NAMES]

    def _spawn(self, wait_ready: bool) -> None:
        assert self._connection is not None
        for path in self._socket_paths():  # stale sockets of a previous kernel
            if os.path.exists(path):
                os.unlink(path)
        fd = os.open(self.connection_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(self._connection, f)
        os.makedirs(self._scratch, mode=0o700, exist_ok=True)
        argv = [sys.executable, "-m", "ipykernel_launcher", "-f", self.connection_file]
        log = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            self._child = self._registry.spawn(lambda: fork_exec(argv, self._env, self._workspace, (null, log, log)))
        finally:
            os.close(log)
            os.close(null)
        self._started_at = time.time()
        if wait_ready:
            self._wait_ready()

    def _wait_ready(self) -> None:
        """Wait for the kernel's socket files, so a client can connect at once."""
        assert self._child is not None
        deadline = time.monotonic() + READY_SECONDS
        paths = self._socket_paths()
        while not all(os.path.exists(p) for p in paths):
            if self._child.exited.wait(0.005):
                raise RunnerError(
                    errors.KERNEL_START_FAILED,
                    "the kernel %s during start-up" % self._child.describe_exit(),
                    log=self._log_tail(),
                )
            if time.monotonic() > deadline:
                self._stop()
                raise RunnerError(
                    errors.KERNEL_START_FAILED,
                    "the kernel did not open its sockets within %d s" % READY_SECONDS,
                    log=self._log_tail(),
                )

    def _running(self) -> Child:
        if self._child is None or self._child.exited.is_set():
            raise RunnerError(errors.KERNEL_NOT_RUNNING, "the kernel is not running", kernel=self._status())
        return self._child

    def _stop(self) -> None:
        child = self._child
        if child is None:
            return
        if not child.exited.is_set():
            kill_session(child.pid, signal.SIGTERM)
            if not child.exited.wait(STOP_SECONDS):
                kill_session(child.pid, signal.SIGKILL)
                child.exited.wait(STOP_SECONDS)
        kill_session(child.pid, signal.SIGKILL)  # whatever it started

    def _log_tail(self) -> str:
        try:
            with open(self._log_path, "r", encoding="utf-8", errors="replace") as f:
                tail: Deque[str] = collections.deque(f, maxlen=LOG_TAIL_LINES)
        except OSError:
            return ""
        return "".join(tail)

    def _status(self) -> Dict[str, Any]:
        child = self._child
        status: Dict[str, Any] = {
            "started": child is not None,
            "alive": self.alive(),
            "pid": child.pid if child else None,
            "restarts": self._restarts,
            "connection_file": self.connection_file if self._connection else None,
        }
        if child is not None:
            status["started_at"] = self._started_at
            if child.exited.is_set():
                status["exit"] = child.describe_exit()
                status["exit_code"] = child.returncode
                status["log"] = self._log_tail()
        return status


class Kernels:
    """The sandbox's kernels: its own (no name) and the named ones the host starts beside it."""

    def __init__(
        self, registry: ChildRegistry, run_dir: str, workspace: str, scratch_dir: str, env: Dict[str, str]
    ) -> None:
        self._made_with = (registry, run_dir, workspace, scratch_dir, env)
        self.default = self._new("")
        self._named: Dict[str, Kernel] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Kernel:
        """The kernel called ``name`` ("" or none: the sandbox's own); ``kernel_not_running`` for an unknown name."""
        if not name:
            return self.default
        with self._lock:
            kernel = self._named.get(_checked_name(name))
        if kernel is None:
            raise RunnerError(errors.KERNEL_NOT_RUNNING, "no kernel named %r was started" % name)
        return kernel

    def start(self, name: str, connection: Any, wait_ready: bool) -> Dict[str, Any]:
        """Start the kernel ``name`` (a new name takes one of ``MAX_NAMED_KERNELS`` places, given back if it fails)."""
        if not name:
            return self.default.start(connection, wait_ready)
        with self._lock:
            kernel = self._named.get(_checked_name(name))
            if kernel is None:
                if len(self._named) >= MAX_NAMED_KERNELS:
                    raise RunnerError(
                        errors.BAD_REQUEST, "%d named kernels run already: shut one down first" % MAX_NAMED_KERNELS
                    )
                kernel = self._named[name] = self._new(name)
        try:
            return kernel.start(connection, wait_ready)
        except BaseException:
            if not kernel.alive():
                self._forget(kernel)
            raise

    def shutdown(self, name: str) -> Dict[str, Any]:
        """Stop the kernel ``name``; a named one is forgotten (its name is free again). Not an error without one."""
        if not name:
            return self.default.shutdown()
        with self._lock:
            kernel = self._named.get(_checked_name(name))
        if kernel is None:
            return self._new(name).status()  # never started
        status = kernel.shutdown()
        self._forget(kernel)
        return status

    def status(self, name: str) -> Dict[str, Any]:
        with self._lock:
            kernel = self._named.get(_checked_name(name)) if name else self.default
        return (kernel or self._new(name)).status()

    def everyone(self) -> List[Kernel]:
        """The sandbox's own kernel and the named ones."""
        with self._lock:
            return [self.default, *self._named.values()]

    def named_status(self) -> Dict[str, Dict[str, Any]]:
        return {kernel.name: kernel.status() for kernel in self.everyone() if kernel.name}

    def _new(self, name: str) -> Kernel:
        return Kernel(*self._made_with, name=name)

    def _forget(self, kernel: Kernel) -> None:
        with self._lock:
            if self._named.get(kernel.name) is kernel:
                del self._named[kernel.name]
        with contextlib.suppress(OSError):
            os.unlink(kernel.connection_file)


def _checked_name(name: str) -> str:
    if not KERNEL_NAME.match(name):
        raise RunnerError(errors.BAD_REQUEST, "a kernel's name is a lowercase letter, then up to 15 letters or digits")
    return name
