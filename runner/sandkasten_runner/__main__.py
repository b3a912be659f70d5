"""``python3 -m sandkasten_runner``: the sandbox's PID 1.

It starts the shell, serves control.sock, reaps every child, and on SIGTERM
stops the kernel and the shell, ends what is left, and exits 0.
"""

import argparse
import contextlib
import ctypes
import os
import signal
import sys
import tempfile
import threading
from typing import List, Optional

from .errors import RunnerError
from .processes import ChildRegistry
from .restore import RUNNER_SCRATCH_PREFIX
from .server import Runner

# sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
MAX_SOCKET_PATH = 107
PR_SET_CHILD_SUBREAPER = 36
PR_SET_DUMPABLE = 4
STOP_GRACE_SECONDS = 3.0


def _parse(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sandkasten_runner", description=__doc__)
    parser.add_argument(
        "--run-dir",
        default=os.environ.get("SANDKASTEN_RUNNER_RUN_DIR", "/run/sandkasten"),
        help="directory for control.sock and the kernel's sockets (bind-mounted from the host)",
    )
    parser.add_argument(
        "--workspace",
        default=os.environ.get("SANDKASTEN_RUNNER_WORKSPACE", "/workspace"),
        help="the only directory file operations may touch",
    )
    return parser.parse_args(argv)


def _log(message: str) -> None:
    sys.stderr.write("sandkasten-runner: %s\n" % message)
    sys.stderr.flush()


def _become_subreaper() -> None:
    """Outside a container, adopt orphaned grandchildren as PID 1 would."""
    if os.getpid() == 1:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _refuse_ptrace() -> None:
    """Code in the sandbox runs as the runner's user, so it could ptrace-attach to the
    runner and freeze or steer it. A non-dumpable process can only be traced with
    CAP_SYS_PTRACE, which nobody here has. Children get the flag back at execve,
    so the user's own programs stay debuggable."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the runner as PID 1: serve the control socket until SIGTERM; returns the exit status."""
    options = _parse(argv)
    socket_path = os.path.join(options.run_dir, "control.sock")
    if len(socket_path.encode()) > MAX_SOCKET_PATH:
        _log(
            "the control socket path %s is %d bytes; Unix sockets allow %d. Use a shorter run directory."
            % (socket_path, len(socket_path.encode()), MAX_SOCKET_PATH)
        )
        return 2
    for name, path in (("run directory", options.run_dir), ("workspace", options.workspace)):
        if not os.path.isdir(path):
            _log("the %s %s does not exist" % (name, path))
            return 2

    _become_subreaper()
    _refuse_ptrace()
    registry = ChildRegistry()
    stop = threading.Event()
    signal.signal(signal.SIGCHLD, lambda signum, frame: registry.reap())
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda signum, frame: stop.set())

    scratch = tempfile.mkdtemp(prefix=RUNNER_SCRATCH_PREFIX)
    runner = Runner(options.run_dir, options.workspace, scratch, registry)
    try:
        runner.shell.start()
    except RunnerError as exc:
        _log("%s; exec will retry it" % exc.message)
    runner.listen()
    _log("listening on %s (pid %d)" % (socket_path, os.getpid()))
    while not stop.wait(0.5):
        registry.reap()  # in case a SIGCHLD arrived while a spawn held the reaper off
    _log("stopping: SIGTERM to every process, SIGKILL after %g s" % STOP_GRACE_SECONDS)
    runner.stop(STOP_GRACE_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
