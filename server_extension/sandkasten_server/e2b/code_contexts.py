"""E2B's code contexts in a sandbox: each is a kernel, and the default one is the session's own.

The default context is the session's Jupyter kernel (``SessionKernels``), the
one ``run_code`` and a JupyterLab console reach too, so its id is that
kernel's id. The others are kernels beside it (``context_kernels``). A
context runs one execution at a time (``lock``), and knows which one runs
(``current``) so that a restart can end it with E2B's ``ContextRestarting``
error instead of leaving its stream waiting.

The contexts of all sandboxes are kept in the server's settings, by session
id; a sandbox's entry goes when a new sandbox's is made and its session has
ended meanwhile.
"""

from __future__ import annotations

import abc
import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sandkasten_kernel.engine import SessionRecord

from ..session_kernels import MAX_OUTPUT_LIMIT, CodeResult, SessionKernels
from .paths import E2B_HOME

if TYPE_CHECKING:
    from .code_execution import Execution

Emit = Callable[[dict[str, Any]], Awaitable[None]]
SETTINGS_KEY = "sandkasten_e2b_contexts"


class Context(abc.ABC):
    """A code context: a Python kernel in the sandbox, with E2B's id, language and cwd."""

    language = "python"

    def __init__(self, context_id: str, cwd: str = E2B_HOME) -> None:
        self.id = context_id
        self.cwd = cwd
        self.lock = asyncio.Lock()  # one execution at a time, in the order they came
        self.current: Execution | None = None
        self.set_up = False  # this kernel process has had ``setup``

    def as_json(self) -> dict[str, str]:
        return {"id": self.id, "language": self.language, "cwd": self.cwd}

    @abc.abstractmethod
    async def run(self, record: SessionRecord, code: str, emit: Emit) -> CodeResult:
        """Run ``code`` to its end (no timeout: E2B's client ends it by leaving), streaming to ``emit``."""

    @abc.abstractmethod
    async def interrupt(self) -> None:
        """SIGINT to the kernel: the running execution stops, the kernel's state stays."""

    async def restart(self) -> None:
        """Restart the kernel (its state goes); an execution under way ends with ``ContextRestarting``."""
        await self.end_current("ContextRestarting", "Context was restarted")
        self.set_up = False
        await self._restart()

    async def end_current(self, name: str, value: str) -> None:
        """Stop waiting for the execution under way, if any: it ends with the error ``name``: ``value``."""
        current = self.current
        if current is not None:
            await current.end_with(name, value)

    def first_cwd(self) -> str | None:
        """The directory the first execution in this kernel process changes to first, once (None: stay).
        The session's env needs no such step: every kernel in the sandbox has it (``engine.session_env``)."""
        return None

    def close(self) -> None:
        """The sandbox has ended: let go of what the host holds of the context."""
        return None

    @abc.abstractmethod
    async def _restart(self) -> None: ...


class DefaultContext(Context):
    """The session's own kernel, run through ``SessionKernels`` like ``run_code``."""

    def __init__(self, kernels: SessionKernels, kernel_id: str) -> None:
        super().__init__(kernel_id)
        self.kernels = kernels

    async def run(self, record: SessionRecord, code: str, emit: Emit) -> CodeResult:
        return await self.kernels.run(record, code, math.inf, emit=emit, max_output=MAX_OUTPUT_LIMIT)

    async def interrupt(self) -> None:
        await self.kernels.kernel_manager.interrupt_kernel(self.id)

    async def _restart(self) -> None:
        self.kernels.forget(self.id)  # as ``SessionKernels.run`` does before its restarts
        await self.kernels.kernel_manager.restart_kernel(self.id)


class SandboxContexts:
    """One sandbox's contexts: the default one (while its kernel id holds) and those made with ``POST /contexts``."""

    def __init__(self) -> None:
        self.default: DefaultContext | None = None
        self.extra: dict[str, Context] = {}
        self.starting = asyncio.Lock()  # held while the session's kernel is looked up or started
        self.creating = asyncio.Lock()  # held while a context is made (``context_kernels``)
        self.swept = False  # named kernels an earlier server left are stopped (``context_kernels``)

    def default_for(self, kernels: SessionKernels, kernel_id: str) -> DefaultContext:
        """The default context of the session's kernel ``kernel_id`` (new if the kernel is a new one)."""
        if self.default is None or self.default.id != kernel_id:
            self.default = DefaultContext(kernels, kernel_id)
        return self.default

    def find(self, context_id: str) -> Context | None:
        if self.default is not None and self.default.id == context_id:
            return self.default
        return self.extra.get(context_id)

    def all(self) -> list[Context]:
        return ([self.default] if self.default is not None else []) + list(self.extra.values())


def contexts_of(settings: dict[str, Any], record: SessionRecord, live_ids: Callable[[], set[str]]) -> SandboxContexts:
    """The contexts of ``record``'s sandbox; a sandbox seen for the first time makes the entries of
    ended sessions (not in ``live_ids()``) go."""
    every: dict[str, SandboxContexts] = settings.setdefault(SETTINGS_KEY, {})
    contexts = every.get(record.id)
    if contexts is None:
        live = live_ids()
        for gone in [session_id for session_id in every if session_id not in live]:
            for context in every.pop(gone).all():
                context.close()
        contexts = every[record.id] = SandboxContexts()
    return contexts


def extra_contexts_busy(settings: dict[str, Any]) -> Callable[[SessionRecord], bool]:
    """A probe of whether code runs in one of a session's extra contexts now (a pause waits for it, as for
    ``run_code``; the default context's executions are ``SessionKernels.busy``'s)."""
    every: dict[str, SandboxContexts] = settings.setdefault(SETTINGS_KEY, {})

    def busy(record: SessionRecord) -> bool:
        contexts = every.get(record.id)
        return contexts is not None and any(context.current is not None for context in contexts.extra.values())

    return busy
