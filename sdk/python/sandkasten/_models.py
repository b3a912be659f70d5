"""What the API returns, as typed objects."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, TypedDict


class EgressPolicy(TypedDict, total=False):
    """A domain policy: what a session with network may reach, through the server's filtering proxy.

    Entries are host names (``"deb.debian.org"``: that name only), wildcards
    (``"*.pythonhosted.org"``: its subdomains, not the name itself) or IPv4
    networks (``"10.20.0.0/16"``). ``deny`` wins over ``allow``; nothing else is
    reached. Asked for in ``create_session(network=...)``, it may narrow the
    server's ``security.egress``, never widen it; ``allow`` left out means the
    server's. In ``SessionInfo.egress`` both lists are always there.
    """

    allow: list[str]
    deny: list[str]


@dataclass(frozen=True)
class ExecResult:
    """One shell command's outcome. ``exit_code`` is None when it timed out."""

    output: str
    exit_code: int | None
    timed_out: bool
    truncated: bool
    duration_ms: float
    output_bytes: int = 0
    shell_restarted: bool = False
    oom_killed: bool = False  # a process was killed for memory (the sandbox's limit) while it ran
    shell_exit: str | None = None  # why the shell was replaced, when shell_restarted
    ran_as: str | None = None  # "shell", or "process": beside a busy shell (``if_busy="process"``)

    @property
    def ok(self) -> bool:
        """The command exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_json(cls, data: dict[str, Any], output: str | None = None) -> ExecResult:
        """The result from the API's JSON; ``output`` replaces the reply's (a stream's collected chunks)."""
        return cls(
            output=data["output"] if output is None else output,
            exit_code=data["exit_code"],
            timed_out=data["timed_out"],
            truncated=data["truncated"],
            duration_ms=data["duration_ms"],
            output_bytes=data.get("output_bytes", 0),
            shell_restarted=data.get("shell_restarted", False),
            oom_killed=data.get("oom_killed", False),
            shell_exit=data.get("shell_exit"),
            ran_as=data.get("ran_as"),
        )


@dataclass(frozen=True)
class RichResult:
    """A rich output of the kernel (an expression's value, or a display): ``data`` maps mime type to value."""

    data: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    kind: str = "execute_result"

    @property
    def text(self) -> str | None:
        """The plain-text form, if there is one."""
        value = self.data.get("text/plain")
        return value if isinstance(value, str) else None

    @property
    def png(self) -> bytes | None:
        """The PNG image, decoded, if there is one."""
        value = self.data.get("image/png")
        return base64.b64decode(value) if isinstance(value, str) else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RichResult:
        """The rich output from the API's JSON (a result of a ``CodeResult``, or a streamed ``result`` event)."""
        return cls(data.get("data", {}), data.get("metadata", {}), data.get("kind", "execute_result"))


@dataclass(frozen=True)
class CodeError:
    """The exception that ended a ``run_code``: its class name, message and formatted traceback."""

    ename: str
    evalue: str
    traceback: list[str]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodeError:
        """The error from the API's JSON (a ``CodeResult``'s, or a streamed ``error`` event)."""
        return cls(data["ename"], data["evalue"], list(data["traceback"]))


@dataclass(frozen=True)
class CodeResult:
    """The outcome of ``run_code``: streams, rich results and the error, if any."""

    stdout: str
    stderr: str
    results: list[RichResult]
    error: CodeError | None
    timed_out: bool = False
    kernel_restarted: bool = False
    execution_count: int | None = None
    duration_ms: float = 0.0
    truncated: bool = False  # output past max_output was dropped (the code ran on)
    output_bytes: int = 0  # all the output, kept or not
    kernel_id: str | None = None  # the kernel that ran it

    @property
    def text(self) -> str | None:
        """The value of the last expression, as text (None if there was none)."""
        values = [r.text for r in self.results if r.kind == "execute_result"]
        return values[-1] if values else None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CodeResult:
        """The result from the API's JSON."""
        error = data.get("error")
        return cls(
            stdout=data["stdout"],
            stderr=data["stderr"],
            results=[RichResult.from_json(r) for r in data["results"]],
            error=CodeError.from_json(error) if error else None,
            timed_out=data.get("timed_out", False),
            kernel_restarted=data.get("kernel_restarted", False),
            execution_count=data.get("execution_count"),
            duration_ms=data.get("duration_ms", 0.0),
            truncated=data.get("truncated", False),
            output_bytes=data.get("output_bytes", 0),
            kernel_id=data.get("kernel_id"),
        )


@dataclass(frozen=True)
class FileEntry:
    """One entry of a directory listing."""

    name: str
    type: str  # file, directory, symlink, other
    size: int
    mode: int = 0
    mtime: float = 0.0


def _egress(data: dict[str, Any] | None) -> EgressPolicy | None:
    """The policy of a session reply, with both lists (None stays None)."""
    if data is None:
        return None
    return {"allow": list(data.get("allow", [])), "deny": list(data.get("deny", []))}


@dataclass(frozen=True)
class SessionInfo:
    """A session as the API describes it; ``raw`` is the whole reply (``kernel``, ``usage``, ...)."""

    id: str
    image: str
    status: str
    workspace: str | None
    owner: str | None
    warm: bool
    created_at: float
    last_active: float
    limits: dict[str, Any]
    network: bool
    kernel_id: str | None
    raw: dict[str, Any] = field(repr=False, default_factory=dict)
    # after ``raw`` so that positional construction stays as it was
    ttl_s: int | None = None
    idle_timeout_s: int | None = None
    env: list[str] = field(default_factory=list)  # the names of its variables (values are not shown)
    workspace_owner: str | None = None  # whose named workspace it mounts (None: the server's own)
    exec_count: int = 0
    egress: EgressPolicy | None = None  # the domain policy in force; None: none (no network, or the open network)
    egress_refused: int = 0  # connections the filtering proxy refused so far
    paused_at: float | None = None  # since when it is paused (``status == "paused"``); None while it runs
    paused_s: float = 0.0  # seconds it spent paused before (its ttl does not count them)
    labels: dict[str, str] = field(default_factory=dict)  # its creator's names for it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionInfo:
        """The session from the API's JSON."""
        kernel = data.get("kernel") or {}
        return cls(
            id=data["id"],
            image=data["image"],
            status=data["status"],
            workspace=data.get("workspace"),
            owner=data.get("owner"),
            warm=data.get("warm", False),
            created_at=data["created_at"],
            last_active=data["last_active"],
            limits=data.get("limits", {}),
            network=data.get("network", False),
            kernel_id=kernel.get("id"),
            raw=data,
            ttl_s=data.get("ttl_s"),
            idle_timeout_s=data.get("idle_timeout_s"),
            env=list(data.get("env", [])),
            workspace_owner=data.get("workspace_owner"),
            exec_count=data.get("exec_count", 0),
            egress=_egress(data.get("egress")),
            egress_refused=data.get("egress_refused", 0),
            paused_at=data.get("paused_at"),
            paused_s=data.get("paused_s", 0.0),
            labels=dict(data.get("labels", {})),
        )


@dataclass(frozen=True)
class WorkspaceInfo:
    """A named workspace: its size, the sessions using it and when it was last used."""

    name: str
    size_bytes: int
    in_use_by: list[str]
    last_used: float | None = None  # optional in the API
    owner: str | None = None  # the user it belongs to (None: the server's own)


class SnapshotWorkspace(TypedDict):
    """What a snapshot's session had at /workspace, and how the snapshot keeps it."""

    kind: str  # tmpfs (the sandbox's own), or named (a named workspace)
    name: str | None  # the named workspace's name
    format: str  # tar, or image: a copy of the named workspace's disk image


@dataclass(frozen=True)
class Snapshot:
    """A session's files (home, /tmp, /workspace) kept under a name: ``client.create_session(snapshot=name)``
    starts a session holding them, with the snapshot's image, limits and network. Processes are not kept."""

    name: str
    owner: str | None  # whose it is (None: the server's own)
    bytes: int  # what it takes on the server's disk (allocated blocks)
    created_at: float
    age_s: float
    source_session: str | None  # the session it was taken from (which may be gone)
    image: str
    workspace: SnapshotWorkspace
    parts: dict[str, int]  # bytes of each part: home, tmp, workspace
    limits: dict[str, Any]  # the session's, which a session from it gets unless it asks for others
    network: bool  # whether the session had a network (a session from it gets the same)
    frozen_ms: float  # how long the session was frozen while its files were taken

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        """The snapshot from the API's JSON."""
        workspace = data["workspace"]
        return cls(
            name=data["name"],
            owner=data["owner"],
            bytes=data["bytes"],
            created_at=data["created_at"],
            age_s=data["age_s"],
            source_session=data["source_session"],
            image=data["image"],
            workspace={"kind": workspace["kind"], "name": workspace["name"], "format": workspace["format"]},
            parts=dict(data["parts"]),
            limits=dict(data["limits"]),
            network=data["network"],
            frozen_ms=data["frozen_ms"],
        )


@dataclass(frozen=True)
class ProcessInfo:
    """A process beside the shell, as the sandbox last saw it (``session.exec(..., background=True)``)."""

    pid: int  # its pid in the sandbox: the name every other call takes
    command: str
    cwd: str
    running: bool
    exit_code: int | None  # -N when killed by signal N; None while running or after a timeout
    timed_out: bool  # killed at its ``timeout_ms``
    started_at: float
    stdin_open: bool  # ``send_stdin`` can still write
    dropped_bytes: int  # output older than the last 1 MiB, no longer kept
    last_seq: int  # the sequence number of its last output chunk (0: none yet)
    tag: str | None = None
    ended_at: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessInfo:
        """The process from the API's JSON."""
        return cls(
            pid=data["pid"],
            command=data["command"],
            cwd=data["cwd"],
            running=data["running"],
            exit_code=data["exit_code"],
            timed_out=data["timed_out"],
            started_at=data["started_at"],
            stdin_open=data["stdin_open"],
            dropped_bytes=data["dropped_bytes"],
            last_seq=data["last_seq"],
            tag=data.get("tag"),
            ended_at=data.get("ended_at"),
        )


@dataclass(frozen=True)
class ProcessResult:
    """A process's output, stdout and stderr apart, and how it stands: ended, or ``running`` when a ``wait``
    ran out first. The output is what the sandbox kept (the last 1 MiB of each)."""

    process: ProcessInfo
    stdout: str
    stderr: str

    @property
    def exit_code(self) -> int | None:
        """Its exit status; -N when a signal N killed it; None while it runs or after its timeout."""
        return self.process.exit_code

    @property
    def timed_out(self) -> bool:
        """It was killed at its ``timeout_ms``."""
        return self.process.timed_out

    @property
    def running(self) -> bool:
        """It has not ended (the wait ran out first)."""
        return self.process.running

    @property
    def ok(self) -> bool:
        """It exited with status 0."""
        return self.exit_code == 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessResult:
        """The result from the API's JSON (a ``wait`` reply)."""
        return cls(ProcessInfo.from_json(data["process"]), data["stdout"], data["stderr"])


@dataclass(frozen=True)
class ProcessEvent:
    """One event of a followed process: ``started`` or ``exit`` (with ``process``), or ``output`` (``stream``
    ``"stdout"`` or ``"stderr"``, its ``data`` as text, and its ``seq``: follow again from there)."""

    type: str
    process: ProcessInfo | None = None
    stream: str | None = None
    seq: int | None = None
    data: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessEvent:
        """The event from one line of the API's stream."""
        process = data.get("process")
        return cls(
            type=data["type"],
            process=ProcessInfo.from_json(process) if process is not None else None,
            stream=data.get("stream"),
            seq=data.get("seq"),
            data=data.get("data"),
        )
