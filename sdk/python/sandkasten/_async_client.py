"""``SandboxClient`` and its ``Session``: the asynchronous API."""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import httpx

from . import _calls, _processes
from ._callbacks import CodeCallbacks, ErrorCallback, OutputCallback, ResultCallback
from ._calls import Call, ExecOptions, IfBusy, Network, RetryPolicy
from ._exceptions import BadRequestError, NotFoundError
from ._models import (
    CodeResult,
    ExecResult,
    FileEntry,
    ProcessInfo,
    ProcessResult,
    SessionInfo,
    Snapshot,
    WorkspaceInfo,
)
from ._processes import Process
from ._transport import Transport

_Self = TypeVar("_Self", bound="_Releasing")

if TYPE_CHECKING:
    from typing_extensions import Unpack  # Python 3.11's typing.Unpack


class ExecStream:
    """``async for chunk in stream``: output text as it comes; then ``stream.result`` is set."""

    def __init__(self, events: AsyncIterator[dict[str, Any]], raise_on_timeout: bool) -> None:
        self._events = events
        self._raise_on_timeout = raise_on_timeout
        self._chunks: list[str] = []
        self.result: ExecResult | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        async for event in self._events:
            if event["type"] == "output":
                self._chunks.append(event["data"])
                yield event["data"]
            elif event["type"] == "result":
                self.result = _calls.exec_result(event, self._raise_on_timeout, "".join(self._chunks))


class _Releasing:
    """``async with`` gives the object itself, and releases it at the end (``_release``)."""

    async def __aenter__(self: _Self) -> _Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._release()

    async def _release(self) -> None:
        raise NotImplementedError


class Session(_Releasing):
    """A sandbox: a persistent bash shell, a Jupyter kernel and /workspace. ``async with`` destroys it."""

    def __init__(self, transport: Transport, info: SessionInfo) -> None:
        self._transport = transport
        self.info = info
        self.id = info.id

    def __repr__(self) -> str:
        return "<Session %s %s>" % (self.id, self.info.image)

    async def _release(self) -> None:
        await self.destroy()

    async def refresh(self) -> SessionInfo:
        """Fetch the session's description anew (``info``)."""
        self.info = SessionInfo.from_json(await self._transport.send(Call("GET", "sessions/%s" % self.id)))
        return self.info

    async def pause(self) -> SessionInfo:
        """Freeze the sandbox: nothing in it runs and its clocks stop, until ``resume``.

        Its shell, background jobs, kernel and files stay as they are (and so does its memory).
        Meanwhile calls that need it raise ``BadRequestError`` with ``code == "session_paused"``;
        pausing raises it with ``code == "session_busy"`` while calls to it are under way.
        """
        return await self._act("pause")

    async def resume(self) -> SessionInfo:
        """Let the paused sandbox run on, as it was (``info.status`` is ``running`` again)."""
        return await self._act("resume")

    async def _act(self, action: str) -> SessionInfo:
        reply = await self._transport.send(Call("POST", "sessions/%s/%s" % (self.id, action)))
        self.info = SessionInfo.from_json(reply)
        return self.info

    async def snapshot(self, name: str) -> Snapshot:
        """Keep the session's files (its home directory, /tmp and /workspace) as your snapshot ``name``.

        They are taken in one freeze of the sandbox (a fraction of a second; a paused session stays paused);
        processes are not kept. ``client.create_session(snapshot=name)`` starts sessions holding them.
        Raises ``BadRequestError`` with ``code`` ``snapshot_exists`` for a name you have, ``session_busy``
        while calls to the session are under way, ``snapshot_too_large`` past the server's
        ``quota.max_snapshot_mb``; ``QuotaExceededError`` past its other snapshot quotas.
        """
        reply = await self._transport.send(Call("POST", "sessions/%s/snapshots" % self.id, json={"name": name}))
        return Snapshot.from_json(reply)

    async def fork(self, n: int = 1) -> builtins.list[Session]:
        """``n`` (1-16) new sessions, each with its own copy of this session's files as they are now.

        Each gets this session's image, limits and network, and its workspace in a new place (a new named
        workspace ``<name>-<6 hex>`` when this session has one). All or none: if one cannot start, none is
        kept, and the error is raised.
        """
        reply = await self._transport.send(Call("POST", "sessions/%s/fork" % self.id, json={"count": n}))
        return [Session(self._transport, SessionInfo.from_json(s)) for s in reply["sessions"]]

    async def destroy(self) -> None:
        """Remove the sandbox (a named workspace stays). Destroying twice is not an error."""
        with contextlib.suppress(NotFoundError):
            await self._transport.send(Call("DELETE", "sessions/%s" % self.id))

    # -- the shell ----------------------------------------------------------------------------

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: Literal[True],
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> Process: ...

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: OutputCallback,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> ProcessResult: ...

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: None = None,
        on_stderr: OutputCallback,
        **options: Unpack[ExecOptions],
    ) -> ProcessResult: ...

    @overload
    async def exec(
        self,
        command: str,
        *,
        background: Literal[False] = False,
        on_stdout: None = None,
        on_stderr: None = None,
        **options: Unpack[ExecOptions],
    ) -> ExecResult: ...

    async def exec(
        self,
        command: str,
        *,
        background: bool = False,
        on_stdout: OutputCallback | None = None,
        on_stderr: OutputCallback | None = None,
        **options: Unpack[ExecOptions],
    ) -> ExecResult | ProcessResult | Process:
        """Run ``command`` in the persistent shell; on timeout it is killed and its output so far returned.

        ``if_busy="process"``: while another exec has the shell, run this one as a process beside it (in
        /workspace or ``cwd``, without the shell's variables; ``result.ran_as == "process"``) rather than
        raise ``BadRequestError`` with ``code == "shell_busy"``.

        ``background=True``: start it as a process beside the shell and return its ``Process`` at once
        (``wait()``, ``kill()``, ``send_stdin()``, its events); ``stdin=True`` keeps its stdin open, text is
        written to it and then closed; ``tag`` labels it in ``processes()``.

        ``on_stdout``/``on_stderr``: run it as a process beside the shell, calling back with its output as it
        comes, and return a ``ProcessResult`` (stdout and stderr apart); with ``background=True`` a task of
        the client calls them while the process runs.

        A process starts in /workspace (or ``cwd``) and sees the sandbox's environment plus ``env``, not the
        shell's directory or variables; ``timeout_ms`` kills it and everything it started.
        """
        return await self._exec(command, background, on_stdout, on_stderr, **options)

    async def _exec(
        self,
        command: str,
        background: bool,
        on_stdout: OutputCallback | None,
        on_stderr: OutputCallback | None,
        *,
        timeout_ms: int | None = None,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | bool | None = None,
        raise_on_timeout: bool = False,
        if_busy: IfBusy | None = None,
        tag: str | None = None,
    ) -> ExecResult | ProcessResult | Process:
        """``exec``, typed as one call (the synchronous session's way in)."""
        plan = _calls.exec_plan(background, on_stdout, on_stderr, stdin, raise_on_timeout)
        options = {"timeout_ms": timeout_ms, "cwd": cwd, "env": env, "tag": tag}
        if plan == "background":
            return await _processes.start(self._transport, self.id, command, options, stdin, on_stdout, on_stderr)
        text = stdin if isinstance(stdin, str) else None
        if plan == "process":
            return await _processes.run(
                self._transport, self.id, command, options, text, on_stdout, on_stderr, raise_on_timeout
            )
        call = _calls.exec_call(self.id, command, timeout_ms, cwd, env, text, if_busy=if_busy)
        return _calls.exec_result(await self._transport.send(call), raise_on_timeout)

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
    ) -> ExecStream:
        """Run ``command`` and iterate over its output as it comes; ``stream.result`` is set at the end."""
        call = _calls.exec_call(self.id, command, timeout_ms, cwd, env, stdin, stream=True, if_busy=if_busy)
        return ExecStream(self._transport.events(call), raise_on_timeout)

    # -- processes beside the shell -----------------------------------------------------------

    async def processes(self) -> builtins.list[Process]:
        """The session's processes, running and recently ended (the last 64), oldest first."""
        reply = await self._transport.send(Call("GET", "sessions/%s/processes" % self.id))
        return [Process(self._transport, self.id, ProcessInfo.from_json(p)) for p in reply["processes"]]

    async def process(self, pid: int) -> Process:
        """The process ``pid`` (running, or recently ended): to wait for it, follow it, signal it, ...
        ``NotFoundError`` if the sandbox has no such process (any more)."""
        reply = await self._transport.send(_calls.process_call("GET", self.id, pid))
        return Process(self._transport, self.id, ProcessInfo.from_json(reply))

    # -- the kernel ---------------------------------------------------------------------------

    async def run_code(
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
        """Run ``code`` in the session's kernel. At most ``max_output`` bytes of output are kept (the server's
        default: 1 MiB, as exec's); ``result.truncated`` says when more was dropped.

        With callbacks the outputs are streamed: ``on_stdout``/``on_stderr`` get the text as it is printed,
        ``on_result`` each ``RichResult`` (a display, the last expression's value), ``on_error`` the
        ``CodeError`` that ended the code; the ``CodeResult`` at the end has everything too."""
        callbacks = CodeCallbacks(on_stdout, on_stderr, on_result, on_error)
        call = _calls.code_call(self.id, code, timeout_ms, max_output, stream=bool(callbacks))
        if callbacks:
            return await callbacks.take(self._transport.events(call))
        return CodeResult.from_json(await self._transport.send(call))

    # -- files ----------------------------------------------------------------------------------

    async def write(self, path: str, data: str | bytes, *, mode: int | None = None) -> int:
        """Write ``data`` (text is UTF-8) to ``path`` under /workspace; parents are made. Returns the size."""
        content = data.encode("utf-8") if isinstance(data, str) else data
        params = {"mode": "%o" % mode} if mode is not None else None
        reply = await self._transport.send(Call("PUT", _calls.file_path(self.id, path), content=content, params=params))
        return int(reply["size"])

    async def read(self, path: str) -> str:
        """The text (UTF-8) of the file at ``path``."""
        return (await self.read_bytes(path)).decode("utf-8")

    async def read_bytes(self, path: str) -> bytes:
        """The bytes of the file at ``path``."""
        reply = await self._transport.send(Call("GET", _calls.file_path(self.id, path)))
        if isinstance(reply, dict):
            raise BadRequestError("%s is a directory: use list()" % path, status=409, code="is_a_directory")
        assert isinstance(reply, bytes)
        return reply

    async def list(self, path: str = ".") -> list[FileEntry]:
        """Every entry of the directory, sorted by name (the API sends large ones in pages)."""
        entries: list[FileEntry] = []
        params: dict[str, str] | None = None
        while True:
            reply = await self._transport.send(Call("GET", _calls.file_path(self.id, path), params=params))
            if not isinstance(reply, dict):
                raise BadRequestError("%s is a file: use read()" % path, status=409, code="not_a_directory")
            entries.extend(FileEntry(**entry) for entry in reply["entries"])
            if not reply.get("truncated") or not reply["entries"]:
                return entries
            params = {"after": entries[-1].name}

    async def remove(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory (``recursive=True`` for a non-empty one)."""
        params = {"recursive": "true"} if recursive else None
        await self._transport.send(Call("DELETE", _calls.file_path(self.id, path), params=params))

    async def upload(self, local_dir: str | os.PathLike[str], remote_dir: str = ".") -> int:
        """Copy a local directory's contents into ``remote_dir``; returns the number of files."""
        archive = _calls.tar_of(local_dir)
        reply = await self._transport.send(
            Call("PUT", _calls.file_path(self.id, remote_dir, "archive"), content=archive)
        )
        return int(reply["files"])

    async def download(self, remote_dir: str, local_dir: str | os.PathLike[str]) -> builtins.list[str]:
        """Copy ``remote_dir``'s files into a local directory; returns their names."""
        data = await self._transport.send(Call("GET", _calls.file_path(self.id, remote_dir, "archive")))
        return _calls.untar(data, local_dir)


class Workspaces:
    """The server's named workspaces (``client.workspaces``)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self) -> list[WorkspaceInfo]:
        """The named workspaces you can see."""
        reply = await self._transport.send(Call("GET", "workspaces"))
        return [WorkspaceInfo(**w) for w in reply["workspaces"]]

    async def delete(self, name: str) -> None:
        """Delete a named workspace (refused while a session uses it)."""
        await self._transport.send(Call("DELETE", "workspaces/%s" % name))


class Pool:
    """The server's warm pool of sandboxes (``client.pool``)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def status(self) -> dict[str, Any]:
        """Per image reference: target, ready, claims, misses, ..."""
        reply: dict[str, Any] = await self._transport.send(Call("GET", "pool"))
        return reply


class SandboxClient(_Releasing):
    """The asynchronous client. ``base_url`` is the server's root; ``api_key`` its token.

    A request the server refuses with 503 or 429 and a ``Retry-After`` (its pool exhausted, say) is sent
    again after that wait, up to ``max_retries`` times and ``max_retry_wait`` seconds in all; 0 retries
    raises at once.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 120.0,
        http_client: httpx.AsyncClient | None = None,
        max_retries: int = RetryPolicy.max_retries,
        max_retry_wait: float = RetryPolicy.max_wait,
    ) -> None:
        base_url = base_url or os.environ.get("SANDKASTEN_URL", "http://127.0.0.1:8080")
        api_key = api_key if api_key is not None else os.environ.get("SANDKASTEN_API_KEY", "")
        retry = RetryPolicy(max_retries, max_retry_wait)
        self._transport = Transport(base_url, api_key, timeout, http_client, retry)
        self.workspaces = Workspaces(self._transport)
        self.pool = Pool(self._transport)

    async def _release(self) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections (sessions and their processes stay); stop following processes."""
        await self._transport.close()

    async def create_session(
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
    ) -> Session:
        """Start a sandbox; ``with_kernel`` starts its Jupyter kernel now rather than at the first ``run_code``.

        ``network``: True (what the server's configuration allows), False (none), or a domain policy such as
        ``{"allow": ["pypi.org", "*.pythonhosted.org"]}`` (an ``EgressPolicy``), which may narrow the server's
        ``security.egress`` but not widen it: an entry beyond it raises ``AuthenticationError`` (403,
        ``code == "not_allowed"``), a malformed one ``BadRequestError``. None: the server's default.

        ``snapshot``: one of your snapshots to start from. The session holds its files, and gets its image,
        limits and network unless asked for others (``image``, if given, must be the snapshot's); its
        workspace goes to a new place: ``workspace`` if given (which must not exist yet), else a new named
        workspace when the snapshot's was one, else the sandbox's own.

        ``ttl``: seconds until the session is destroyed. ``idle_timeout``: seconds without a call after which
        it is destroyed, at most the server's ``session.idle_timeout_s``; 0 (never) only with a ``ttl``.
        ``labels``: your own names for the session (up to 64), in ``info.labels`` and listings.
        """
        call = _calls.create_call(
            image, workspace, env, limits, network, ttl, with_kernel, snapshot, labels=labels, idle_timeout=idle_timeout
        )
        return Session(self._transport, SessionInfo.from_json(await self._transport.send(call)))

    async def get_session(self, session_id: str) -> Session:
        """The session with this id."""
        return Session(
            self._transport, SessionInfo.from_json(await self._transport.send(Call("GET", "sessions/%s" % session_id)))
        )

    async def list_sessions(self) -> list[Session]:
        """The sessions you can see."""
        reply = await self._transport.send(Call("GET", "sessions"))
        return [Session(self._transport, SessionInfo.from_json(s)) for s in reply["sessions"]]

    async def list_snapshots(self) -> list[Snapshot]:
        """Your snapshots, oldest first (an admin's list has everyone's, each with its ``owner``)."""
        reply = await self._transport.send(Call("GET", "snapshots"))
        return [Snapshot.from_json(s) for s in reply["snapshots"]]

    async def get_snapshot(self, name: str, *, owner: str | None = None) -> Snapshot:
        """Your snapshot ``name`` (an admin names another user's with ``owner``; ``""``: the server's own)."""
        return Snapshot.from_json(await self._transport.send(_calls.snapshot_call("GET", name, owner)))

    async def delete_snapshot(self, name: str, *, owner: str | None = None) -> None:
        """Delete your snapshot ``name`` (``owner`` as in ``get_snapshot``); sessions made from it keep their
        files."""
        await self._transport.send(_calls.snapshot_call("DELETE", name, owner))
