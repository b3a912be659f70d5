"""The ops on processes beside the shell (PROTOCOL.md §16): spawn, attach, jobs, job_input, job_signal.

An attached connection is the job's until it ends: output frames as the job
writes, then the result. A client that leaves only detaches; the job runs on.
"""

import contextlib
import signal
import threading
from typing import Any, Callable, Dict, Optional

from . import errors
from .errors import RunnerError
from .files import Workspace
from .jobs import POLL_SECONDS, Job, Jobs, parse_signal
from .protocol import DEFAULT_TIMEOUT_MS
from .request import Reply, Request
from .shell import ExecCancelled, hung_up

MAX_COMMAND_CHARS = 1 << 20
MAX_TAG_CHARS = 200


class JobOps:
    """The job ops of one runner, by name (``table``)."""

    def __init__(self, jobs: Jobs, workspace: Workspace) -> None:
        self.jobs = jobs
        self._workspace = workspace

    def table(self) -> Dict[str, Callable[[Request], Reply]]:
        return {
            "spawn": self.spawn,
            "attach": self.attach,
            "jobs": lambda r: ({"processes": self.jobs.list()}, b""),
            "job_input": self.job_input,
            "job_signal": self.job_signal,
        }

    def spawn(self, request: Request) -> Reply:
        """Start a process; with ``follow`` the connection stays on it (as ``attach``), after a ``started`` frame."""
        command = request.arg("command", str, required=True)
        if len(command) > MAX_COMMAND_CHARS:
            raise RunnerError(errors.BAD_REQUEST, "command is longer than %d characters" % MAX_COMMAND_CHARS)
        tag = request.arg("tag", str)
        if tag is not None and len(tag) > MAX_TAG_CHARS:
            raise RunnerError(errors.BAD_REQUEST, "tag is longer than %d characters" % MAX_TAG_CHARS)
        timeout_ms = request.count("timeout_ms", 0) or 0
        job = self.jobs.spawn(
            command,
            cwd=request.cwd(self._workspace),
            env=request.env(),
            stdin=request.arg("stdin", bool, False),
            tag=tag,
            timeout=timeout_ms / 1000.0 or None,
        )
        if not request.arg("follow", bool, False):
            return job.info(), b""
        request.send({"id": request.id, "type": "started", "process": job.info()}, b"")
        return follow(job, request, 0, _sender(request)), b""

    def attach(self, request: Request) -> Reply:
        """Output kept after sequence number ``after`` (0: all of it), then what comes, then the end."""
        job = self.jobs.get(request.arg("pid", int, required=True))
        after = request.count("after", 0) or 0
        return follow(job, request, after, _sender(request)), b""

    def job_input(self, request: Request) -> Reply:
        job = self.jobs.get(request.arg("pid", int, required=True))
        job.write_stdin(request.payload, request.arg("eof", bool, False))
        return job.info(), b""

    def job_signal(self, request: Request) -> Reply:
        job = self.jobs.get(request.arg("pid", int, required=True))
        job.signal(parse_signal(request.args.get("signal", "SIGKILL")))
        return job.info(), b""

    def exec_beside(
        self,
        request: Request,
        command: str,
        timeout_ms: Optional[int],
        cwd: Optional[str],
        env: Dict[str, str],
        stdin: Optional[bytes],
        on_output: Callable[[bytes], None],
    ) -> Dict[str, Any]:
        """An exec while the shell is busy: the command as a process of its own, stdout and stderr as one
        stream like the shell's, waited for here. It starts in the workspace (or ``cwd``), not in the
        shell's directory, and sees none of the shell's variables."""
        timeout_ms = DEFAULT_TIMEOUT_MS if timeout_ms is None else timeout_ms
        job = self.jobs.spawn(
            command,
            cwd=cwd,
            env=env,
            stdin=stdin is not None,
            tag="exec",
            timeout=timeout_ms / 1000.0 or None,
            merge_stderr=True,
        )
        if stdin is not None:  # on a thread: the output must be taken meanwhile, or a full pipe stalls both
            threading.Thread(target=_feed_stdin, args=(job, stdin), name="stdin-%d" % job.pid, daemon=True).start()
        try:
            follow(job, request, 0, lambda seq, stream, data: on_output(data))
        except (ExecCancelled, OSError):
            job.signal(signal.SIGKILL)
            raise
        self.jobs.forget(job)
        code = None if job.timed_out else job.child.returncode
        return {"exit_code": code, "timed_out": job.timed_out, "ran_as": "process"}


def follow(job: Job, request: Request, after: int, on_output: Callable[[int, str, bytes], None]) -> Dict[str, Any]:
    """Hand the job's output after ``after`` to ``on_output`` until it ends; its final ``info``.

    A client that hangs up meanwhile raises ``ExecCancelled``.
    """
    seq = after
    while True:
        chunks, ended = job.chunks_after(seq, POLL_SECONDS)
        for seq, stream, data in chunks:
            on_output(seq, stream, data)
        if ended:
            return job.info()
        if not chunks and hung_up(request.conn):
            raise ExecCancelled("the client closed the connection")


def _sender(request: Request) -> Callable[[int, str, bytes], None]:
    """Output frames to the requesting client, each with its stream and sequence number."""

    def send(seq: int, stream: str, data: bytes) -> None:
        request.send({"id": request.id, "type": "output", "stream": stream, "seq": seq}, data)

    return send


def _feed_stdin(job: Job, data: bytes) -> None:
    # The process may end or close its stdin first: what it read is what it gets.
    with contextlib.suppress(RunnerError):
        job.write_stdin(data, eof=True)
