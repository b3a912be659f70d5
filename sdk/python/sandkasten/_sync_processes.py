"""``SyncProcess``: a process beside the shell, without ``await`` (``SyncSession.exec(..., background=True)``)."""

from __future__ import annotations

from collections.abc import Iterator

from ._callbacks import OutputCallback
from ._loop import LoopThread
from ._models import ProcessEvent, ProcessInfo, ProcessResult
from ._processes import Process


class SyncProcess:
    """A process started beside the shell, as ``Process``. ``for event in process``: its events from the start."""

    def __init__(self, process: Process, runner: LoopThread) -> None:
        self._process = process
        self._runner = runner
        self.session_id = process.session_id
        self.pid = process.pid

    @property
    def info(self) -> ProcessInfo:
        """How it stood at the last call that asked (``refresh`` asks anew)."""
        return self._process.info

    def __repr__(self) -> str:
        return repr(self._process)

    def refresh(self) -> ProcessInfo:
        """Fetch how it stands now (``info``)."""
        return self._runner.run(self._process.refresh())

    def events(self, after: int = 0) -> Iterator[ProcessEvent]:
        """Its events after chunk ``after`` (0: all it keeps) to its ``exit``, as ``Process.events``."""
        return self._runner.iterate(self._process.events(after))

    def __iter__(self) -> Iterator[ProcessEvent]:
        return self.events()

    def follow(
        self, *, on_stdout: OutputCallback | None = None, on_stderr: OutputCallback | None = None, after: int = 0
    ) -> ProcessResult:
        """Follow it to its end, calling back with its output as it comes (on the client's loop thread)."""
        return self._runner.run(self._process.follow(on_stdout=on_stdout, on_stderr=on_stderr, after=after))

    def wait(self, timeout: float | None = None) -> ProcessResult:
        """Wait until it ends, or ``timeout`` seconds pass (then ``result.running`` is True), as ``Process.wait``."""
        return self._runner.run(self._process.wait(timeout))

    def send_stdin(self, data: str, *, eof: bool = False) -> ProcessInfo:
        """Write ``data`` to its stdin; ``eof`` closes it after, as ``Process.send_stdin``."""
        return self._runner.run(self._process.send_stdin(data, eof=eof))

    def close_stdin(self) -> ProcessInfo:
        """Close its stdin: the process reads end of file."""
        return self._runner.run(self._process.close_stdin())

    def signal(self, signal: str | int) -> ProcessInfo:
        """Send ``signal`` (``"SIGTERM"``, ``15``, ...) to it and every process it started."""
        return self._runner.run(self._process.signal(signal))

    def kill(self) -> ProcessInfo:
        """SIGKILL to it and every process it started."""
        return self._runner.run(self._process.kill())
