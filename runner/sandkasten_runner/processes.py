"""Child bookkeeping for a runner that is PID 1: reaping, exit statuses, process trees.

The runner reaps every child with ``waitpid(-1)`` (orphans re-parent to PID 1
inside a sandbox), so nothing else in the runner may call ``wait`` on a pid:
children it cares about are registered here and get their status from the reaper.
"""

import fcntl
import os
import signal
import termios
import threading
from typing import Callable, Dict, Iterator, List, Optional, Tuple


class Child:
    """A child process the runner started; ``exited`` is set once it is reaped."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exited = threading.Event()
        self.status: Optional[int] = None  # raw waitpid status

    @property
    def returncode(self) -> Optional[int]:
        """Exit code, or -N for death by signal N, like subprocess."""
        if self.status is None:
            return None
        if os.WIFSIGNALED(self.status):
            return -os.WTERMSIG(self.status)
        return os.WEXITSTATUS(self.status)

    def describe_exit(self) -> str:
        """How the child ended, for messages: still running, killed by a signal or its exit status."""
        code = self.returncode
        if code is None:
            return "still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "signal %d" % -code
            return "killed by %s" % name
        return "exited with status %d" % code


class ChildRegistry:
    """Tracks registered children; ``reap`` collects every exited child."""

    def __init__(self) -> None:
        self._children: Dict[int, Child] = {}
        self._lock = threading.Lock()
        # Held while reaping and while spawning. The SIGCHLD handler only tries
        # it, so a handler that interrupts a spawn skips instead of deadlocking.
        self._reaping = threading.Lock()

    def spawn(self, start: Callable[[], int]) -> Child:
        """Run ``start`` (which forks and returns the pid) and register the pid.

        Reaping is held off meanwhile, so the child cannot be reaped before the
        registry knows it.
        """
        with self._reaping:
            pid = start()
            child = Child(pid)
            with self._lock:
                self._children[pid] = child
            return child

    def reap(self) -> None:
        """Collect every exited child (orphans too), recording the status of the registered ones."""
        # Called from the SIGCHLD handler and a periodic loop; never re-entered.
        if not self._reaping.acquire(blocking=False):
            return
        try:
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    return
                if pid == 0:
                    return
                with self._lock:
                    child = self._children.pop(pid, None)
                if child is None:
                    continue  # an orphan re-parented to us: reaping is all it needs
                child.status = status
                child.exited.set()
        finally:
            self._reaping.release()


# Python ignores these; an ignored signal stays ignored across exec.
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)
# When the sandbox runs out of memory the kernel kills the process with the highest
# score. Everything the runner starts (and their children, who inherit it) scores
# higher than the runner, so a memory bomb kills the bomb, not the sandbox.
# Raising one's own score needs no privilege.
CHILD_OOM_SCORE_ADJ = b"500"


def fork_exec(
    argv: List[str], env: Dict[str, str], cwd: str, stdio: Tuple[int, int, int], controlling_tty: int = -1
) -> int:
    """Fork and exec ``argv`` as the leader of a new session; return its pid.

    With ``controlling_tty`` the child also takes that terminal as its own.
    """
    pid = os.fork()
    if pid == 0:  # child: only simple system calls until exec
        try:
            os.setsid()
            _raise_oom_score()
            if controlling_tty >= 0:
                fcntl.ioctl(controlling_tty, termios.TIOCSCTTY, 0)
            for fd, source in enumerate(stdio):
                os.dup2(source, fd)
            os.closerange(3, 65536)
            os.chdir(cwd)
            for signum in RESTORED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    return pid


def _raise_oom_score() -> None:
    try:
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, CHILD_OOM_SCORE_ADJ)
        finally:
            os.close(fd)
    except OSError:
        pass  # no /proc (or a kernel without it): the limits still hold, the runner is just less shielded


def iter_processes() -> Iterator[Tuple[int, int, int, int]]:
    """Yield (pid, ppid, session id, rss pages) for every visible process."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        yield int(name), int(fields[1]), int(fields[3]), int(fields[21])


def descendants(root: int) -> List[int]:
    """Pids below ``root`` in the process tree (not including it)."""
    children: Dict[int, List[int]] = {}
    for pid, ppid, _sid, _rss in iter_processes():
        children.setdefault(ppid, []).append(pid)
    found: List[int] = []
    stack = [root]
    while stack:
        for pid in children.get(stack.pop(), []):
            found.append(pid)
            stack.append(pid)
    return found


def kill_session(sid: int, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process of session ``sid``; returns how many."""
    count = 0
    for pid, _ppid, session, _rss in iter_processes():
        if session == sid and pid != os.getpid():
            try:
                os.kill(pid, sig)
                count += 1
            except ProcessLookupError:
                pass
    return count
