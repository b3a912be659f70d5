"""Processes beside the shell: commands with their own pipes, that run concurrently and may outlive the call.

A job is ``bash -l -c COMMAND`` as the leader of a new session, with stdout and
stderr on separate pipes (not the shell's PTY) and stdin on a pipe or
``/dev/null``. One thread per job moves its output into a bounded buffer of
numbered chunks, so a client can attach, leave and attach again from where it
was (``after``); once the leader exits, what its pipes still hold is read and
they are closed, even if a background grandchild keeps them open.

Standard library only, like the rest of the runner.
"""

import collections
import contextlib
import os
import select
import signal
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import errors
from .errors import RunnerError
from .processes import Child, ChildRegistry, fork_exec, kill_session

# Running jobs at once: each holds a thread and two pipes of the sandbox.
MAX_RUNNING_JOBS = 64
# Ended jobs kept for listing and late attaches; the oldest is forgotten first.
MAX_ENDED_JOBS = 64
# Output kept per job for attaches; older chunks are dropped (and counted) beyond it.
KEPT_OUTPUT_BYTES = 1 << 20
READ_BYTES = 1 << 16
# Input waits this long for a process to read some of it: the host's call has a deadline too.
STDIN_STALL_SECONDS = 20
POLL_SECONDS = 0.25
# Once the leader exits, its pipes are read for at most this long: a grandchild that holds
# them open and keeps writing must not keep the job running.
DRAIN_SECONDS = 1.0
STREAMS = ("stdout", "stderr")
# A chunk of output: its sequence number, stream name and bytes.
Chunk = Tuple[int, str, bytes]


def parse_signal(value: Any) -> int:
    """A signal from its name (``SIGTERM``, ``TERM``) or number; a RunnerError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        try:
            number = int(signal.Signals[name])
        except KeyError:
            raise RunnerError(errors.BAD_REQUEST, "unknown signal %r" % value) from None
    else:
        raise RunnerError(errors.BAD_REQUEST, "signal must be a name or a number")
    if number not in {int(s) for s in signal.Signals}:
        raise RunnerError(errors.BAD_REQUEST, "unknown signal %r" % value)
    return number


class Job:
    """One process started beside the shell, and the output it gave."""

    def __init__(self, child: Child, command: str, cwd: str, tag: Optional[str], stdin_fd: int) -> None:
        self.child = child
        self.pid = child.pid
        self.command = command
        self.cwd = cwd
        self.tag = tag
        self.started_at = time.time()
        self.ended_at: Optional[float] = None
        self.timed_out = False
        self.dropped_bytes = 0
        self._stdin_fd = stdin_fd
        self._chunks: Deque[Chunk] = collections.deque()
        self._kept = 0
        self._next_seq = 1
        self._ended = False
        self._changed = threading.Condition()

    @property
    def ended(self) -> bool:
        """The leader exited and its output was read to the end."""
        return self._ended

    def info(self) -> Dict[str, Any]:
        return {
            "pid": self.pid,
            "command": self.command,
            "cwd": self.cwd,
            "tag": self.tag,
            "running": not self._ended,
            "exit_code": self.child.returncode if self._ended else None,
            "timed_out": self.timed_out,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "stdin_open": self._stdin_fd >= 0,
            "dropped_bytes": self.dropped_bytes,
            "last_seq": self._next_seq - 1,
        }

    # -- output ----------------------------------------------------------

    def add_output(self, stream: str, data: bytes) -> None:
        with self._changed:
            self._chunks.append((self._next_seq, stream, data))
            self._next_seq += 1
            self._kept += len(data)
            while self._kept > KEPT_OUTPUT_BYTES and len(self._chunks) > 1:
                _, _, old = self._chunks.popleft()
                self._kept -= len(old)
                self.dropped_bytes += len(old)
            self._changed.notify_all()

    def mark_ended(self) -> None:
        with self._changed:
            self._ended = True
            self.ended_at = time.time()
            self._changed.notify_all()
        self.close_stdin()

    def chunks_after(self, seq: int, wait: float) -> Tuple[List[Chunk], bool]:
        """The kept chunks numbered above ``seq`` (waiting up to ``wait`` s for one), and whether the job ended."""
        with self._changed:
            if not self._ended and (not self._chunks or self._chunks[-1][0] <= seq):
                self._changed.wait(wait)
            return [chunk for chunk in self._chunks if chunk[0] > seq], self._ended

    # -- control ---------------------------------------------------------

    def write_stdin(self, data: bytes, eof: bool) -> None:
        """Write ``data`` to the job's stdin (blocking while its pipe is full); close it after with ``eof``."""
        if self._stdin_fd < 0:
            raise RunnerError(errors.STDIN_CLOSED, "the stdin of process %d is closed" % self.pid)
        view = memoryview(data)
        give_up = time.monotonic() + STDIN_STALL_SECONDS
        try:
            while view:
                if self._ended:
                    raise RunnerError(errors.STDIN_CLOSED, "process %d has ended" % self.pid)
                if time.monotonic() >= give_up:
                    raise RunnerError(
                        errors.STDIN_FULL,
                        "process %d has not read its stdin for %d s; %d of %d bytes were written"
                        % (self.pid, STDIN_STALL_SECONDS, len(data) - len(view), len(data)),
                    )
                _, writable, _ = select.select([], [self._stdin_fd], [], POLL_SECONDS)
                if writable:
                    view = view[os.write(self._stdin_fd, view) :]
                    give_up = time.monotonic() + STDIN_STALL_SECONDS
        except BrokenPipeError:
            self.close_stdin()
            raise RunnerError(errors.STDIN_CLOSED, "process %d no longer reads its stdin" % self.pid) from None
        except OSError as exc:
            if self._stdin_fd < 0:  # closed meanwhile (the job ended)
                raise RunnerError(errors.STDIN_CLOSED, "process %d has ended" % self.pid) from None
            raise RunnerError(errors.IO_ERROR, "writing to process %d failed: %s" % (self.pid, exc)) from None
        if eof:
            self.close_stdin()

    def close_stdin(self) -> None:
        fd, self._stdin_fd = self._stdin_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def signal(self, signum: int) -> None:
        """Send ``signum`` to every process of the job's session (its leader's children too)."""
        if self._ended:
            return
        if not kill_session(self.pid, signum):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)


class Jobs:
    """The runner's jobs by pid: started, listed and found here."""

    def __init__(self, registry: ChildRegistry, workspace: str, env: Dict[str, str]) -> None:
        self._registry = registry
        self._workspace = workspace
        self._env = env
        self._jobs: Dict[int, Job] = {}
        self._lock = threading.Lock()

    def spawn(
        self,
        command: str,
        cwd: Optional[str] = None,
        env: Optional[Dict[str, str]] = None,
        stdin: bool = False,
        tag: Optional[str] = None,
        timeout: Optional[float] = None,
        merge_stderr: bool = False,
    ) -> Job:
        """Start ``command``; with ``stdin`` its stdin is a pipe kept open for ``Job.write_stdin``."""
        with self._lock:
            running = sum(1 for job in self._jobs.values() if not job.ended)
            if running >= MAX_RUNNING_JOBS:
                raise RunnerError(
                    errors.TOO_MANY_JOBS, "%d processes are running; end one first" % running, limit=MAX_RUNNING_JOBS
                )
            self._forget_oldest_ended()
        full_env = dict(self._env)
        full_env.update(env or {})
        workdir = cwd or self._workspace
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if not merge_stderr else (-1, out_w)
        in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
        try:
            child = self._registry.spawn(
                lambda: fork_exec(["bash", "-l", "-c", command], full_env, workdir, (in_r, out_w, err_w))
            )
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            raise RunnerError(errors.IO_ERROR, "cannot start the process: %s" % exc) from None
        for fd in {in_r, out_w, err_w}:
            os.close(fd)
        job = Job(child, command, workdir, tag, in_w)
        with self._lock:
            self._jobs[job.pid] = job
        readers = {out_r: "stdout"} if merge_stderr else {out_r: "stdout", err_r: "stderr"}
        deadline = time.monotonic() + timeout if timeout else None
        try:
            threading.Thread(
                target=_pump, args=(job, readers, deadline, self._registry.reap), name="job-%d" % job.pid, daemon=True
            ).start()
        except RuntimeError:  # no thread to be had: the pids limit is used up
            kill_session(job.pid)
            job.child.exited.wait(2)
            for fd in readers:
                os.close(fd)
            job.mark_ended()
            raise RunnerError(errors.TOO_MANY_JOBS, "no thread left to watch a new process") from None
        return job

    def _forget_oldest_ended(self) -> None:
        ended = sorted((job for job in self._jobs.values() if job.ended), key=lambda job: job.ended_at or 0)
        for job in ended[: max(0, len(ended) - MAX_ENDED_JOBS + 1)]:
            del self._jobs[job.pid]

    def get(self, pid: Any) -> Job:
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise RunnerError(errors.BAD_REQUEST, "pid must be an integer")
        with self._lock:
            job = self._jobs.get(pid)
        if job is None:
            raise RunnerError(errors.NOT_FOUND, "no process %d was started here (or it was forgotten)" % pid)
        return job

    def forget(self, job: Job) -> None:
        """Drop an ended job at once (an exec run beside the shell leaves nothing behind)."""
        with self._lock:
            if self._jobs.get(job.pid) is job:
                del self._jobs[job.pid]

    def list(self) -> List[Dict[str, Any]]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda job: job.started_at)
        return [job.info() for job in jobs]

    def running_pids(self) -> List[int]:
        with self._lock:
            return [job.pid for job in self._jobs.values() if not job.ended]


def _pump(job: Job, readers: Dict[int, str], deadline: Optional[float], reap: Callable[[], None]) -> None:
    """Move the job's output into it until its leader exits, then read what the pipes still hold.

    SIGCHLD may land on any thread while the reaper runs on the main one, which then
    notices only at its next round: so this thread reaps too, when the pipes go quiet.
    """
    open_fds = list(readers)
    drain_until: Optional[float] = None  # set once the leader has exited
    pause = 0.005  # how long to wait before reaping again while nothing happens; doubles up to POLL_SECONDS
    try:
        while True:
            now = time.monotonic()
            if drain_until is None and job.child.exited.is_set():
                drain_until = now + DRAIN_SECONDS
            if drain_until is None and deadline is not None and now >= deadline and not job.timed_out:
                job.timed_out = True
                job.signal(signal.SIGKILL)
            if drain_until is not None and (not open_fds or now >= drain_until):
                break
            if not open_fds:  # the leader closed its output: it has ended, or runs on without it
                reap()
                job.child.exited.wait(pause if deadline is None else max(0.0, min(pause, deadline - now)))
                pause = min(pause * 2, POLL_SECONDS)
                continue
            wait = 0.0 if drain_until is not None else pause
            if deadline is not None and drain_until is None:
                wait = max(0.0, min(wait, deadline - now))  # the kill comes at the deadline, not a poll later
            ready, _, _ = select.select(open_fds, [], [], wait)
            if not ready:
                if drain_until is not None:
                    break  # the leader is gone and its pipes hold nothing more
                reap()
                pause = min(pause * 2, POLL_SECONDS)
                continue
            pause = 0.005
            for fd in ready:
                try:
                    data = os.read(fd, READ_BYTES)
                except OSError:
                    data = b""
                if data:
                    job.add_output(readers[fd], data)
                else:
                    open_fds.remove(fd)
    finally:
        for fd in readers:
            with contextlib.suppress(OSError):
                os.close(fd)
        job.mark_ended()
