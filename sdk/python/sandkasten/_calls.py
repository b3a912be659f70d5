"""The API's calls as data, and its replies as results or exceptions: shared by the async and sync clients.

The two clients differ only in how they send a ``Call``; everything about
paths, bodies, error mapping, retries and archives lives here once.
"""

from __future__ import annotations

import email.utils
import io
import json
import os
import tarfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict
from urllib.parse import quote

import httpx

from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    ExecTimeout,
    NotFoundError,
    QuotaExceededError,
    SandkastenError,
    ServerError,
)
from ._models import EgressPolicy, ExecResult

API = "/sandkasten/api/"
RETRY_DELAYS_S = (0.2, 0.5, 1.0)  # connection problems, for GET and DELETE only
SAFE_TO_RETRY = frozenset({"GET", "DELETE"})
# A larger body goes out in pieces of this size: the socket layer copies what it cannot
# send at once, and a copy of one piece is cheap where one of the whole body is not.
BODY_PIECE = 1 << 20
# What ``create_session(network=...)`` takes: network or not, or a domain policy ({"allow": [...], "deny": [...]}).
Network: TypeAlias = bool | EgressPolicy | Mapping[str, Sequence[str]]
# What an exec does while another exec has the shell: refuse (409 shell_busy), or run as a process beside it.
IfBusy: TypeAlias = Literal["error", "process"]


class ExecOptions(TypedDict, total=False):
    """The options every form of ``session.exec`` takes, besides ``background`` and the callbacks."""

    timeout_ms: int | None
    cwd: str | None
    env: Mapping[str, str] | None
    stdin: str | bool | None
    raise_on_timeout: bool
    if_busy: IfBusy | None
    tag: str | None


# The statuses the server sends Retry-After with: it refused the request before acting on it.
RETRY_AFTER_STATUSES = frozenset({429, 503})
# ... except for this 503, which also comes when the sandbox's runner went away after it got the request
# (its connection broke mid-call): a POST refused with it may have been done, and is not sent again.
MAYBE_DONE = frozenset({"sandbox_unavailable"})


@dataclass(frozen=True)
class Call:
    """One API request: method, path, body or query parameters, and whether its reply is streamed."""

    method: str
    path: str  # relative to /sandkasten/api/
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, str] | None = None
    stream: bool = False

    @property
    def retryable(self) -> bool:
        """Whether the request may be sent again after a connection error (GET and DELETE only)."""
        return self.method in SAFE_TO_RETRY


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long in all, to wait and send again a request refused with 503 or 429 and a
    ``Retry-After``.

    POST is retried too: the server sends these statuses (pool exhausted, engine starting, too many
    processes) when it refused the request before acting on it, so nothing is done twice. The one
    exception, ``MAYBE_DONE``, is not retried for a POST (``may_resend``). A wait longer than what is left
    of ``max_wait`` is not waited for: the error is raised at once.
    """

    max_retries: int = 3
    max_wait: float = 10.0  # seconds, all waits of one call together

    def delay(self, status: int, retry_after: str | None, retries: int, waited: float) -> float | None:
        """Seconds to wait before sending again, or None to raise the error now."""
        if status not in RETRY_AFTER_STATUSES or retry_after is None or retries >= self.max_retries:
            return None
        seconds = retry_after_s(retry_after)
        if seconds is None or waited + seconds > self.max_wait:
            return None
        return seconds


def may_resend(method: str, code: str | None) -> bool:
    """Whether a request refused with error ``code`` may be sent again: not a POST the sandbox may have done."""
    return method != "POST" or code not in MAYBE_DONE


def retry_after_s(value: str) -> float | None:
    """A ``Retry-After`` header's wait in seconds: delay-seconds, or an HTTP date (None: neither)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def present(**values: Any) -> dict[str, Any]:
    """The values that are not None, by name: a request body's options, the rest left to the server."""
    return {name: value for name, value in values.items() if value is not None}


def client_options(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    """The httpx client's settings: the API's base URL, the token and user agent, the timeouts."""
    return {
        "base_url": base_url.rstrip("/") + API,
        "headers": {"Authorization": "token %s" % api_key, "User-Agent": "sandkasten-python/0.1"},
        "timeout": httpx.Timeout(timeout, connect=10.0),
    }


def request_options(call: Call) -> dict[str, Any]:
    """The httpx request arguments for ``call``'s query parameters and body (JSON or bytes)."""
    options: dict[str, Any] = {"params": call.params}
    if call.json is not None:
        options["json"] = call.json
    elif call.content is not None and len(call.content) > BODY_PIECE:
        options["content"] = _pieces(call.content)
        options["headers"] = {"Content-Length": str(len(call.content))}  # not chunked: the size is known
    elif call.content is not None:
        options["content"] = call.content
    return options


async def _pieces(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), BODY_PIECE):
        yield data[start : start + BODY_PIECE]


_STATUS_ERRORS: list[tuple[range, type[SandkastenError]]] = [
    (range(401, 402), AuthenticationError),
    (range(403, 404), AuthenticationError),
    (range(404, 405), NotFoundError),
    (range(429, 430), QuotaExceededError),
    (range(500, 600), ServerError),
    (range(400, 500), BadRequestError),
]


def error_for(status: int, body: bytes) -> SandkastenError:
    """The SDK exception for an HTTP error status and the server's error body."""
    try:
        data = json.loads(body)
        code, message = data.get("error"), data.get("message") or str(data)
    except (ValueError, AttributeError):
        code, message = None, body.decode("utf-8", "replace")[:500] or "HTTP %d" % status
    cls = next((cls for statuses, cls in _STATUS_ERRORS if status in statuses), SandkastenError)
    return cls("%s (HTTP %d)" % (message, status), status=status, code=code)


async def read_body(response: httpx.Response) -> bytes:
    """The whole body of a streamed response, written into one buffer as it arrives.

    Each piece is let go at once, so a large body is held once, not twice (as
    pieces, then joined), and the buffer is handed back without a copy.
    """
    body = io.BytesIO()
    async for piece in response.aiter_bytes():
        body.write(piece)
    return body.getvalue()


def file_path(session_id: str, remote: str, kind: str = "files") -> str:
    """The API path of ``remote`` in the session's ``files`` (or ``archive``) routes."""
    return "sessions/%s/%s/%s" % (session_id, kind, remote.lstrip("/") or ".")


# -- sessions ---------------------------------------------------------------------------------


def create_call(
    image: str | None,
    workspace: str | None,
    env: Mapping[str, str] | None,
    limits: Mapping[str, Any] | None,
    network: Network | None,
    ttl: int | None,
    with_kernel: bool,
    snapshot: str | None = None,
    labels: Mapping[str, str] | None = None,
    idle_timeout: int | None = None,
) -> Call:
    """The call that creates a session (from one of your snapshots, if ``snapshot`` names one); options that
    are None are left to the server."""
    body = present(
        image=image,
        workspace=workspace,
        env=dict(env) if env else None,
        limits=dict(limits) if limits else None,
        network=network if network is None or isinstance(network, bool) else dict(network),
        ttl_s=ttl,
        idle_timeout_s=idle_timeout,
        labels=dict(labels) if labels else None,
        snapshot=snapshot,
    )
    if with_kernel:
        body["with_kernel"] = True
    return Call("POST", "sessions", json=body)


def snapshot_call(method: str, name: str, owner: str | None = None) -> Call:
    """The call that reads (GET) or deletes (DELETE) a snapshot of yours; an admin names another user's with
    ``owner`` (``""``: the server's own)."""
    params = {"owner": owner} if owner is not None else None
    return Call(method, "snapshots/%s" % quote(name, safe=""), params=params)


def exec_call(
    session_id: str,
    command: str,
    timeout_ms: int | None,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: str | None,
    stream: bool = False,
    if_busy: IfBusy | None = None,
) -> Call:
    """The call that runs a shell command in the session (``stream``: output as NDJSON events)."""
    body = present(
        command=command, timeout_ms=timeout_ms, cwd=cwd, env=dict(env) if env else None, stdin=stdin, if_busy=if_busy
    )
    if stream:
        body["stream"] = True
    return Call("POST", "sessions/%s/exec" % session_id, json=body, stream=stream)


def code_call(
    session_id: str, code: str, timeout_ms: int | None, max_output: int | None = None, stream: bool = False
) -> Call:
    """The call that runs code in the session's kernel (``stream``: output as NDJSON events)."""
    body = present(code=code, timeout_ms=timeout_ms, max_output=max_output)
    if stream:
        body["stream"] = True
    return Call("POST", "sessions/%s/run_code" % session_id, json=body, stream=stream)


def exec_plan(
    background: bool, on_stdout: object, on_stderr: object, stdin: str | bool | None, raise_on_timeout: bool
) -> Literal["shell", "process", "background"]:
    """How ``session.exec`` runs a command with these options: in the shell, as a process it follows to the
    end (callbacks), or as a process it returns at once (``background``). Options that cannot go together
    raise ``ValueError``."""
    if background:
        if raise_on_timeout:
            raise ValueError("raise_on_timeout does not apply to background=True: see wait()'s result.timed_out")
        return "background"
    if stdin is True:
        raise ValueError("stdin=True keeps a process's stdin open for send_stdin(): it needs background=True")
    return "process" if on_stdout is not None or on_stderr is not None else "shell"


def process_start_call(
    session_id: str,
    command: str,
    timeout_ms: int | None,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: bool,
    tag: str | None,
    stream: bool = False,
) -> Call:
    """The call that starts a process beside the shell (``stdin``: keep its stdin open; ``stream``: follow it
    in the reply, as NDJSON events)."""
    body = present(command=command, timeout_ms=timeout_ms, cwd=cwd, env=dict(env) if env else None, tag=tag)
    if stdin:
        body["stdin"] = True
    if stream:
        body["stream"] = True
    return Call("POST", "sessions/%s/processes" % session_id, json=body, stream=stream)


def process_call(
    method: str,
    session_id: str,
    pid: int,
    action: str = "",
    body: Any = None,
    params: Mapping[str, str] | None = None,
) -> Call:
    """A call on process ``pid``: itself (``action`` empty), or its ``events``, ``wait``, ``stdin``, ``signal``."""
    path = "sessions/%s/processes/%d%s" % (session_id, pid, "/" + action if action else "")
    return Call(method, path, json=body, params=params, stream=action == "events")


def exec_result(data: dict[str, Any], raise_on_timeout: bool, output: str | None = None) -> ExecResult:
    """The ``ExecResult`` of an exec reply; raises ``ExecTimeout`` on a timeout if ``raise_on_timeout``."""
    result = ExecResult.from_json(data, output)
    if raise_on_timeout and result.timed_out:
        raise ExecTimeout("the command ran past its timeout (%.0f ms)" % result.duration_ms, result)
    return result


def stream_event(line: bytes) -> dict[str, Any] | None:
    """One NDJSON line of a streamed exec or run_code; an ``error`` event raises."""
    if not line.strip():
        return None
    event: dict[str, Any] = json.loads(line)
    if event.get("type") == "error" and "error" in event:
        raise error_for(500 if event["error"] != "not_found" else 404, json.dumps(event).encode())
    return event


# -- directories as tar -----------------------------------------------------------------------


def tar_of(local_dir: str | os.PathLike[str]) -> bytes:
    """A gzipped tar of what is in ``local_dir``, to upload into a session's directory."""
    root = os.fspath(local_dir)
    if not os.path.isdir(root):
        raise BadRequestError("%s is not a local directory" % root)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in sorted(os.listdir(root)):
            archive.add(os.path.join(root, name), arcname=name)
    return buffer.getvalue()


def untar(data: bytes, local_dir: str | os.PathLike[str]) -> list[str]:
    """Unpack into ``local_dir`` (made if missing), refusing members that would land outside it."""
    os.makedirs(local_dir, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        members = archive.getmembers()
        target = os.path.realpath(local_dir)
        for member in members:
            where = os.path.realpath(os.path.join(target, member.name))
            if not (member.isfile() or member.isdir()) or not where.startswith(target + os.sep):
                raise BadRequestError("archive member %r would not stay a file inside %s" % (member.name, target))
        if hasattr(tarfile, "data_filter"):  # Python 3.12+, and security releases before it
            archive.extractall(target, members=members, filter="data")
        else:
            archive.extractall(target, members=members)
    return [m.name for m in members if m.isfile()]
