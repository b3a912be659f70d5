"""``SyncSandboxClient``: the same API without ``await``.

It drives the asynchronous client on an event loop of its own, in a daemon
thread, so the two can never behave differently.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from ._async_client import ExecStream, SandboxClient, Session
from ._callbacks import ErrorCallback, OutputCallback, ResultCallback
from ._calls import ExecOptions, IfBusy, Network, RetryPolicy
from ._loop import LoopThread
from ._models import CodeResult, ExecResult, FileEntry, ProcessResult, SessionInfo, Snapshot, WorkspaceInfo
from ._processes import Process
from ._sync_processes import SyncProcess

if TYPE_CHECKING:
    from typing_extensions import Unpack  # Python 3.11's typing.Unpack


class SyncExecStream:
    """``for chunk in stream``: output text as it comes; then ``stream.result`` is set."""

    def __init__(self, stream: ExecStream, runner: LoopThread) -> None:
        self._stream = stream
        self._runner = runner

    @property
    def result(self) -> ExecResult | None:
        """The command's result, once the output has been read to the end."""
        return self._stream.result

    def __iter__(self) -> Iterator[str]:
        return self._runner.iterate(self._stream)


class SyncSession:
    """A sandbox: a persistent bash shell, a Jupyter kernel and /workspace. ``with`` destroys it."""

    def __init__(self, session: Session, runner: LoopThread) -> None:
        self._session = session
        self._run = runner.run
        self._runner = runner
        self.id = session.id

    @property
    def info(self) -> SessionInfo:
        """The session's description (as of creation or the last ``refresh``)."""
        return self._session.info

    def __repr__(self) -> str:
        return repr(self._session)

    def __enter__(self) -> SyncSession:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.destroy()

    def refresh(self) -> SessionInfo:
        """Fetch the session's description anew (``info``)."""
        return self._run(self._session.refresh())

    def pause(self) -> SessionInfo:
        """Freeze the sandbox until ``resume``, as ``Session.pause``."""
        return self._run(self._session.pause())

    def resume(self) -> SessionInfo:
        """Let the paused sandbox run on, as it was."""
        return self._run(self._session.resume())

    def snapshot(self, name: str) -> Snapshot:
        """Keep the session's files (home, /tmp, /workspace) as your snapshot ``name``, as ``Session.snapshot``."""
        return self._run(self._session.snapshot(name))

    def fork(self, n: int = 1) -> builtins.list[SyncSession]:
        """``n`` (1-16) new sessions holding this session's files as they are now, as ``Session.fork``."""
        return [SyncSession(s, self._runner) for s in self._run(self._session.fork(n))]

    def destroy(self) -> None:
        """Remove the sandbox (a named workspace stays). Destroying twice is not an error."""
        self._run(self._session.destroy())

    @overload
    def exec(
        self,
        command: str,
        *,
        background: Literal[True],
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> SyncProcess: ...

    @overload
    def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: OutputCallback,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> ProcessResult: ...

    @overload
    def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: None = None,
        on_stderr: OutputCallback,
        **options: Unpack[ExecOptions],
    ) -> ProcessResult: ...

    @overload
    def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: None = None,
        on_stderr: None = None,
        **options: Unpack[ExecOptions],
    ) -> ExecResult: ...

    def exec(
        self,
        command: str,
        *,
        background: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> ExecResult | ProcessResult | SyncProcess:
        """Run ``command`` in the persistent shell, or as a process beside it, as ``Session.exec``. Callbacks
        run on the client's event loop thread."""
        outcome = self._run(self._session._exec(command, background, on_stdout, on_stderr, **options))
        return SyncProcess(outcome, self._runner) if isinstance(outcome, Process) else outcome

    def exec_stream(
        self,
        command: str,
        *,
        timeout_ms: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        raise_on_timeout: bool = False,
        if_busy: IfBusy | None = None,
    ) -> SyncExecStream:
        """Run ``command`` and iterate over its output as it comes, as ``Session.exec_stream``."""
        stream = self._session.exec_stream(
            command,
            timeout_ms=timeout_ms,
            cwd=cwd,
            env=env,
            stdin=stdin,
            raise_on_timeout=raise_on_timeout,
            if_busy=if_busy,
        )
        return SyncExecStream(stream, self._runner)

    def processes(self) -> builtins.list[SyncProcess]:
        """The session's processes, running and recently ended, oldest first."""
        return [SyncProcess(p, self._runner) for p in self._run(self._session.processes())]

    def process(self, pid: int) -> SyncProcess:
        """The process ``pid`` (running, or recently ended), as ``Session.process``."""
        return SyncProcess(self._run(self._session.process(pid)), self._runner)

    def run_code(
        self,
        code: str,
        *,
        timeout_ms: int | None = None,
        max_output: int | None = None,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        on_result: ResultCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> CodeResult:
        """Run ``code`` in the session's kernel, as ``Session.run_code``; callbacks run on the client's event
        loop thread."""
        return self._run(
            self._session.run_code(
                code,
                timeout_ms=timeout_ms,
                max_output=max_output,
                on_stdout=on_stdout,
                on_stderr=on_stderr,
                on_result=on_result,
                on_error=on_error,
            )
        )

    def write(self, path: str, data: str | bytes, *, mode: int | None = None) -> int:
        """Write ``data`` (text is UTF-8) to ``path`` under /workspace; parents are made. Returns the size."""
        return self._run(self._session.write(path, data, mode=mode))

    def read(self, path: str) -> str:
        """The text (UTF-8) of the file at ``path``."""
        return self._run(self._session.read(path))

    def read_bytes(self, path: str) -> bytes:
        """The bytes of the file at ``path``."""
        return self._run(self._session.read_bytes(path))

    def list(self, path: str = ".") -> list[FileEntry]:
        """Every entry of the directory, sorted by name."""
        return self._run(self._session.list(path))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory (``recursive=True`` for a non-empty one)."""
        self._run(self._session.remove(path, recursive=recursive))

    def upload(self, local_dir: str | os.PathLike[str], remote_dir: str = ".") -> int:
        """Copy a local directory's contents into ``remote_dir``; returns the number of files."""
        return self._run(self._session.upload(local_dir, remote_dir))

    def download(self, remote_dir: str, local_dir: str | os.PathLike[str]) -> builtins.list[str]:
        """Copy ``remote_dir``'s files into a local directory; returns their names."""
        return self._run(self._session.download(remote_dir, local_dir))


class _SyncWorkspaces:
    """The server's named workspaces (``client.workspaces``), without ``await``."""

    def __init__(self, client: SandboxClient, runner: LoopThread) -> None:
        self._client, self._run = client, runner.run

    def list(self) -> list[WorkspaceInfo]:
        """The named workspaces you can see."""
        return self._run(self._client.workspaces.list())

    def delete(self, name: str) -> None:
        """Delete a named workspace (refused while a session uses it)."""
        self._run(self._client.workspaces.delete(name))


class _SyncPool:
    """The server's warm pool of sandboxes (``client.pool``), without ``await``."""

    def __init__(self, client: SandboxClient, runner: LoopThread) -> None:
        self._client, self._run = client, runner.run

    def status(self) -> dict[str, Any]:
        """Per image reference: target, ready, claims, misses, ..."""
        return self._run(self._client.pool.status())


class SyncSandboxClient:
    """The synchronous client: ``SandboxClient`` without ``await`` (retries as it does)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        max_retries: int = RetryPolicy.max_retries,
        max_retry_wait: float = RetryPolicy.max_wait,
    ) -> None:
        self._runner = LoopThread()

        async def make() -> SandboxClient:  # httpx's client belongs to the loop it is made on
            return SandboxClient(
                base_url, api_key, timeout=timeout, max_retries=max_retries, max_retry_wait=max_retry_wait
            )

        self._client = self._runner.run(make())
        self.workspaces = _SyncWorkspaces(self._client, self._runner)
        self.pool = _SyncPool(self._client, self._runner)

    def __enter__(self) -> SyncSandboxClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connections and stop the event loop thread (sessions stay)."""
        self._runner.run(self._client.close())
        self._runner.stop()

    def create_session(
        self,
        *,
        image: str | None = None,
        workspace: str | None = None,
        env: Mapping[str, str] | None = None,
        limits: Mapping[str, Any] | None = None,
        network: Network | None = None,
        ttl: int | None = None,
        idle_timeout: int | None = None,
        labels: Mapping[str, str] | None = None,
        with_kernel: bool = False,
        snapshot: str | None = None,
    ) -> SyncSession:
        """Start a sandbox (from one of your snapshots, if ``snapshot`` names one), as
        ``SandboxClient.create_session``."""
        session = self._runner.run(
            self._client.create_session(
                image=image,
                workspace=workspace,
                env=env,
                limits=limits,
                network=network,
                ttl=ttl,
                idle_timeout=idle_timeout,
                labels=labels,
                with_kernel=with_kernel,
                snapshot=snapshot,
            )
        )
        return SyncSession(session, self._runner)

    def get_session(self, session_id: str) -> SyncSession:
        """The session with this id."""
        return SyncSession(self._runner.run(self._client.get_session(session_id)), self._runner)

    def list_sessions(self) -> list[SyncSession]:
        """The sessions you can see."""
        return [SyncSession(s, self._runner) for s in self._runner.run(self._client.list_sessions())]

    def list_snapshots(self) -> list[Snapshot]:
        """Your snapshots, oldest first (an admin's list has everyone's)."""
        return self._runner.run(self._client.list_snapshots())

    def get_snapshot(self, name: str, *, owner: str | None = None) -> Snapshot:
        """Your snapshot ``name``, as ``SandboxClient.get_snapshot``."""
        return self._runner.run(self._client.get_snapshot(name, owner=owner))

    def delete_snapshot(self, name: str, *, owner: str | None = None) -> None:
        """Delete your snapshot ``name``; sessions made from it keep their files."""
        self._runner.run(self._client.delete_snapshot(name, owner=owner))
