"""Each session's Jupyter kernel, run by Jupyter Server's own kernel manager.

The kernel is started with the sandkasten provisioner bound to the session's
sandbox (``sandkasten_session_id``), so it is listed under ``/api/kernels``
and a person can open a console on the kernel an agent drives: same
variables, same /workspace. ``run`` executes code on it with the timeout
contract of ``exec``: on timeout the kernel is interrupted and keeps its
state; if the interrupt does not take, it is restarted.

Output is capped like exec's too (``max_output``, the same default and
largest value): stdout, stderr, rich results and the error together keep at
most that many bytes, and the result says ``truncated``. Past the cap the code
runs on (until it ends or times out, as an exec does) and its output is read
and dropped, streamed or not; it is collected in lists and joined once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import asdict, dataclass, field
from queue import Empty
from typing import Any

import zmq
from jupyter_client.kernelspec import NoSuchKernel

from sandkasten_kernel.engine import IMAGES, SessionRecord
from sandkasten_kernel.engine.config import RUNTIME_REPOSITORY
from sandkasten_kernel.kernelspecs import kernel_name

from .errors import ApiError

CLIENT_HOLDER = "client:"  # prefix of a session's kernel_id while a client in another process holds its kernel
INTERRUPT_GRACE_S = 5.0  # how long an interrupted execution may take to stop before a restart
POLL_S = 1.0  # how often a silent kernel is checked for being alive
# As exec's (runner/PROTOCOL.md: DEFAULT_MAX_OUTPUT, MAX_OUTPUT_LIMIT); the OpenAPI CodeRequest says the same.
DEFAULT_MAX_OUTPUT = 1 << 20
MAX_OUTPUT_LIMIT = 16 << 20

Emit = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class CodeResult:
    stdout: str = ""
    stderr: str = ""
    results: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    execution_count: int | None = None
    timed_out: bool = False
    truncated: bool = False  # output past max_output was dropped
    output_bytes: int = 0  # all the output, kept or not
    kernel_restarted: bool = False
    duration_ms: float = 0.0
    kernel_id: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Outputs:
    """What an execution printed and showed, kept up to ``cap`` bytes in all; the rest only counted."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = 0
        self.total = 0
        self.streams: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self.results: list[dict[str, Any]] = []
        self.truncated = False

    def text(self, value: Any) -> str:
        """The part of ``value`` (a text from the kernel) that fits (whole characters), counted."""
        text = value if isinstance(value, str) else str(value)
        data = text.encode("utf-8", "surrogatepass")
        self.total += len(data)
        room = self.cap - self.kept
        if len(data) > room:
            self.truncated = True
            text = data[: max(room, 0)].decode("utf-8", "ignore")
            data = text.encode("utf-8", "surrogatepass")
        self.kept += len(data)
        return text

    def fits(self, value: Any) -> bool:
        """Whether ``value`` (a rich result: an image is kept whole or not at all) fits, counted."""
        size = len(json.dumps(value, default=str))
        self.total += size
        if size > self.cap - self.kept:
            self.truncated = True
            return False
        self.kept += size
        return True

    def into(self, result: CodeResult) -> None:
        result.stdout = "".join(self.streams["stdout"])
        result.stderr = "".join(self.streams["stderr"])
        result.results = self.results
        result.truncated = self.truncated
        result.output_bytes = self.total


def _event_of(message: dict[str, Any], result: CodeResult, outputs: Outputs) -> dict[str, Any] | None:
    """Fold one IOPub message into ``result`` and ``outputs``; return the event to stream, if any."""
    kind, content = message["msg_type"], message["content"]
    if kind == "stream":
        name = "stderr" if content.get("name") == "stderr" else "stdout"
        text = outputs.text(content.get("text", ""))
        if not text:
            return None
        outputs.streams[name].append(text)
        return {"type": name, "text": text}
    if kind in ("execute_result", "display_data"):
        rich = {"kind": kind, "data": content.get("data", {}), "metadata": content.get("metadata", {})}
        if not outputs.fits(rich):
            return None
        outputs.results.append(rich)
        return {"type": "result", **rich}
    if kind == "error":
        result.error = {k: outputs.text(content.get(k, "")) for k in ("ename", "evalue")}
        traceback = [outputs.text(line) for line in content.get("traceback", [])]
        result.error["traceback"] = [line for line in traceback if line]
        return {"type": "error", **result.error}
    if kind == "execute_input":
        result.execution_count = content.get("execution_count")
    return None


class SessionKernels:
    def __init__(self, kernel_manager: Any, max_message_bytes: int) -> None:
        self.kernel_manager = kernel_manager
        # Code in the sandbox owns its kernel and could send one message as large as the sandbox's
        # memory: every socket of the kernel manager's context (the websockets' and run_code's)
        # drops a peer that sends more than this in one message, before it is received whole.
        kernel_manager.context.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
        self._clients: dict[str, Any] = {}
        self._started_by: dict[str, Any] = {}  # kernel id -> the start (its manager's ``ready``) its client knew
        # One execution at a time per session: they share one IOPub reader.
        self._locks: collections.defaultdict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._letting_go: set[asyncio.Task[None]] = set()  # kernel managers letting go of destroyed sessions

    def running(self, record: SessionRecord) -> str | None:
        """The id of the session's kernel, if the kernel manager has it."""
        if record.kernel_id and record.kernel_id in self.kernel_manager:
            return record.kernel_id
        return None

    def last_activity(self, record: SessionRecord) -> float | None:
        """When the session's kernel last sent or received a message (any client's), as a timestamp."""
        kernel_id = self.running(record)
        if kernel_id is None:
            return None
        activity = getattr(self.kernel_manager.get_kernel(kernel_id), "last_activity", None)
        return activity.timestamp() if activity is not None else None

    @staticmethod
    def client_holds(record: SessionRecord) -> bool:
        """Whether a Jupyter client in another process holds the session's kernel (``sessions/{id}/kernel``)."""
        return bool(record.kernel_id and record.kernel_id.startswith(CLIENT_HOLDER))

    @classmethod
    def held_by_a_client(cls, record: SessionRecord) -> float | None:
        """Now, while a Jupyter client in another process holds the session's kernel (its traffic is not seen
        here, so such a session is never idle; ``ttl_s`` still ends it)."""
        return time.time() if cls.client_holds(record) else None

    def busy(self, record: SessionRecord) -> bool:
        """Whether code runs on the session's kernel through ``run`` now (a pause waits for it)."""
        lock = self._locks.get(record.id)
        return lock is not None and lock.locked()

    def model(self, record: SessionRecord) -> dict[str, Any] | None:
        kernel_id = self.running(record)
        if kernel_id is None:
            return None
        model: dict[str, Any] = self.kernel_manager.kernel_model(kernel_id)
        return {key: model.get(key) for key in ("id", "execution_state", "connections", "last_activity")}

    def _spec_name(self, record: SessionRecord) -> str:
        """Any sandkasten kernelspec carries the provisioner; the image's own reads best in JupyterLab."""
        repository, _, own = record.image.partition(":")
        names = ([own] if repository == RUNTIME_REPOSITORY else []) + list(IMAGES)  # an added image's too
        specs = self.kernel_manager.kernel_spec_manager.find_kernel_specs()
        for name in names:
            if kernel_name(name) in specs:
                return kernel_name(name)
        raise ApiError(
            503, "no_kernelspec", "no sandkasten kernelspec is installed: run `sandkasten kernelspec install`"
        )

    async def ensure(self, record: SessionRecord) -> str:
        """The session's kernel id, starting the kernel (bound to its sandbox) if none runs."""
        kernel_id = self.running(record)
        if kernel_id is not None:
            return kernel_id
        if self.client_holds(record):
            raise ApiError(
                409,
                "kernel_in_use",
                "the session's kernel is held by a Jupyter client in another process (%s)" % record.kernel_id,
            )
        try:
            started: str = await self.kernel_manager.start_kernel(
                kernel_name=self._spec_name(record), sandkasten_session_id=record.id
            )
        except NoSuchKernel as exc:
            raise ApiError(503, "no_kernelspec", str(exc)) from None
        return started

    async def _client(self, kernel_id: str) -> Any:
        manager = self.kernel_manager.get_kernel(kernel_id)
        if self._started_by.get(kernel_id) is not manager.ready:
            # Restarted since (through /api/kernels, or by Jupyter's restarter): a client of the old process
            # would reconnect on its own, but its iopub socket later than its shell socket, losing the output
            # of the first execution. Its manager's ``ready`` is a new future at every (re)start.
            self.forget(kernel_id)
        client = self._clients.get(kernel_id)
        if client is None:
            # The kernel manager's context: its sockets carry the cap on one message (see __init__).
            client = manager.client(context=self.kernel_manager.context)
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=60)
            except RuntimeError:
                client.stop_channels()
                raise
            self._clients[kernel_id], self._started_by[kernel_id] = client, manager.ready
        return client

    def forget(self, kernel_id: str | None) -> None:
        client = self._clients.pop(kernel_id or "", None)
        self._started_by.pop(kernel_id or "", None)
        if client is not None:
            client.stop_channels()

    async def run(
        self,
        record: SessionRecord,
        code: str,
        timeout_s: float,
        emit: Emit | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> CodeResult:
        async with self._locks[record.id]:
            kernel_id = await self.ensure(record)
            started = time.monotonic()
            result = CodeResult(kernel_id=kernel_id)
            outputs = Outputs(max_output)
            client = await self._client(kernel_id)
            msg_id = client.execute(code, allow_stdin=False, stop_on_error=False)
            if not await self._collect(client, msg_id, result, outputs, started + timeout_s, emit):
                result.timed_out = True
                await self.kernel_manager.interrupt_kernel(kernel_id)
                grace = time.monotonic() + INTERRUPT_GRACE_S
                if not await self._collect(client, msg_id, result, outputs, grace, emit):
                    self.forget(kernel_id)
                    await self.kernel_manager.restart_kernel(kernel_id)
                    result.kernel_restarted = True
            outputs.into(result)
            result.duration_ms = round((time.monotonic() - started) * 1000, 3)
            return result

    async def _collect(
        self, client: Any, msg_id: str, result: CodeResult, outputs: Outputs, deadline: float, emit: Emit | None
    ) -> bool:
        """Read IOPub until the execution is idle (True) or ``deadline`` passes (False)."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                message = await client.get_iopub_msg(timeout=min(remaining, POLL_S))
            except Empty:
                if not await client.is_alive():
                    # Jupyter Server's restarter brings a dead kernel back; its state is gone.
                    result.error = {
                        "ename": "KernelDied",
                        "evalue": "the kernel died; it is restarted",
                        "traceback": [],
                    }
                    result.kernel_restarted = True
                    self.forget(next((k for k, c in self._clients.items() if c is client), None))
                    return True
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue  # someone else's execution on the same kernel (a person in JupyterLab)
            if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                return True
            event = _event_of(message, result, outputs)
            if event is not None and emit is not None:
                await emit(event)

    async def stop(self, record: SessionRecord) -> None:
        """Shut the session's kernel down (the session stays)."""
        kernel_id = self.running(record)
        self.forget(record.kernel_id)
        if kernel_id is not None:
            with contextlib.suppress(KeyError):
                await self.kernel_manager.shutdown_kernel(kernel_id)

    def let_go(self, record: SessionRecord) -> None:
        """Just before the session is destroyed: the kernel manager lets go of its kernel, in the background.

        Its restarter stops first (else it would see the kernel die with the sandbox and
        restart it, racing the shutdown); nothing is asked to shut down (``now``).
        """
        kernel_id = self.running(record)
        self.forget(record.kernel_id)
        if kernel_id is not None:
            self.kernel_manager.get_kernel(kernel_id).stop_restarter()
            task = asyncio.ensure_future(self._shut_down_now(kernel_id))
            self._letting_go.add(task)
            task.add_done_callback(self._letting_go.discard)

    async def _shut_down_now(self, kernel_id: str) -> None:
        with contextlib.suppress(KeyError):  # shut down meanwhile
            await self.kernel_manager.shutdown_kernel(kernel_id, now=True)

    async def close(self, keep: Collection[SessionRecord] = ()) -> None:
        """Shut every session's kernel down (the server stops), but those of ``keep``, which the kernel
        manager only lets go of: a paused session's kernel is frozen and cannot be asked to stop, and it
        carries on as it was when the session is resumed (a later ``ensure`` finds it running)."""
        if self._letting_go:
            await asyncio.wait(self._letting_go)
        for record in keep:
            kernel_id = self.running(record)
            if kernel_id is not None:
                self.kernel_manager.get_kernel(kernel_id).stop_restarter()
                self.kernel_manager.remove_kernel(kernel_id)
        for kernel_id in list(self._clients):
            self.forget(kernel_id)
        await self.kernel_manager.shutdown_all()
