"""Calling back as a streamed reply comes: a process's output, and ``run_code``'s outputs.

A callback may be a plain function or a coroutine function: what it returns is
awaited when it is awaitable. With the synchronous client, callbacks run on its
event loop's thread.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

from ._exceptions import SandkastenConnectionError
from ._models import CodeError, CodeResult, RichResult

T = TypeVar("T")

# Called with each chunk of output text as it comes.
OutputCallback: TypeAlias = Callable[[str], object]
# Called with each rich output (an expression's value, a display) of run_code as it comes.
ResultCallback: TypeAlias = Callable[[RichResult], object]
# Called with the exception that ended a run_code's code.
ErrorCallback: TypeAlias = Callable[[CodeError], object]


async def call_back(callback: Callable[[T], object] | None, value: T) -> None:
    """Call ``callback`` (if any) with ``value``, awaiting what it returns when that is awaitable."""
    if callback is None:
        return
    outcome = callback(value)
    if inspect.isawaitable(outcome):
        await outcome


@dataclass(frozen=True)
class CodeCallbacks:
    """What ``run_code`` calls back with as its outputs come."""

    on_stdout: OutputCallback | None = None
    on_stderr: OutputCallback | None = None
    on_result: ResultCallback | None = None
    on_error: ErrorCallback | None = None

    def __bool__(self) -> bool:
        return any((self.on_stdout, self.on_stderr, self.on_result, self.on_error))

    async def take(self, events: AsyncIterator[dict[str, Any]]) -> CodeResult:
        """Call back for each event of a streamed ``run_code``; the ``CodeResult`` its ``done`` event carries."""
        async for event in events:
            kind = event["type"]
            if kind == "stdout":
                await call_back(self.on_stdout, event["text"])
            elif kind == "stderr":
                await call_back(self.on_stderr, event["text"])
            elif kind == "result":
                await call_back(self.on_result, RichResult.from_json(event))
            elif kind == "error":
                await call_back(self.on_error, CodeError.from_json(event))
            elif kind == "done":
                return CodeResult.from_json(event)
        raise SandkastenConnectionError("the run_code stream ended before its result")
