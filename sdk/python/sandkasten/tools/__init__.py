"""Ready-made agent tools over a session: exec, write_file, read_file, run_python.

Each returns text a model reads well: the exit code stated, long output cut
to its end with a note saying so, and errors as text rather than exceptions
(a model can recover from "no such file"; an exception would end its run).

Framework adapters (optional extras):

- ``sandkasten.tools.openai_agents.sandbox_tools(session)`` -> OpenAI Agents SDK ``FunctionTool``s
  (``pip install 'sandkasten[openai-agents]'``);
- ``sandkasten.tools.langchain.sandbox_tools(session)`` -> LangChain ``BaseTool``s
  (``pip install 'sandkasten[langchain]'``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._async_client import Session
from .._exceptions import SandkastenError
from .._models import CodeResult, ExecResult
from .._sync_client import SyncSession

AnySession = Session | SyncSession
MAX_CHARS = 8000
TIMEOUT_MS = 60_000

DESCRIPTIONS = {
    "exec": "Run a bash command in the sandbox's persistent shell (cd, variables and background jobs persist "
    "between calls; files live in /workspace). Calls made at the same time run side by side: the ones that find "
    "the shell busy run in /workspace without its variables. Returns the exit code and the output.",
    "write_file": "Write text to a file in /workspace (parent directories are created). Returns the path and size.",
    "read_file": "Read a text file from /workspace.",
    "run_python": "Run Python code in the sandbox's Jupyter kernel (variables persist between calls). Returns "
    "stdout, stderr, the value of the last expression and any error.",
}


def clip(text: str, limit: int = MAX_CHARS) -> str:
    """The end of ``text`` when it is longer than ``limit`` (errors and results come last), with a note."""
    if len(text) <= limit:
        return text
    return "[output truncated: showing the last %d of %d characters]\n%s" % (limit, len(text), text[-limit:])


def exec_text(result: ExecResult, limit: int = MAX_CHARS) -> str:
    """A shell command's result as a model reads it: the exit code (or the timeout), then the output."""
    if result.timed_out:
        head = "timed out after %.0f ms (the command was stopped; the shell keeps its state)" % result.duration_ms
    else:
        head = "exit code %s" % result.exit_code
    if result.ran_as == "process":
        head += " (ran beside the busy shell: in /workspace, without the shell's directory and variables)"
    if result.truncated:
        head += " (the sandbox kept only part of %d bytes of output)" % result.output_bytes
    return "%s\n%s" % (head, clip(result.output, limit)) if result.output else head + "\n(no output)"


def code_text(result: CodeResult, limit: int = MAX_CHARS) -> str:
    """A ``run_code`` result as a model reads it: the streams, the results, the error and any timeout."""
    parts = []
    if result.stdout:
        parts.append("stdout:\n" + result.stdout)
    if result.stderr:
        parts.append("stderr:\n" + result.stderr)
    for rich in result.results:
        if rich.text is not None:
            parts.append(("result: " if rich.kind == "execute_result" else "display: ") + rich.text)
        elif rich.data:
            parts.append("display: [%s]" % ", ".join(sorted(rich.data)))
    if result.error is not None:
        parts.append("error: %s: %s" % (result.error.ename, result.error.evalue))
    if result.timed_out:
        parts.append(
            "timed out: the kernel was %s"
            % (
                "restarted (its variables are gone)"
                if result.kernel_restarted
                else "interrupted (its variables are kept)"
            )
        )
    return clip("\n".join(parts) or "(no output)", limit)


async def _call(session: AnySession, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``method`` on either kind of session without blocking the event loop."""
    bound = getattr(session, method)
    if isinstance(session, Session):
        return await bound(*args, **kwargs)
    return await asyncio.to_thread(bound, *args, **kwargs)


class SandboxTools:
    """The four tools' behaviour, independent of any agent framework."""

    def __init__(self, session: AnySession, *, timeout_ms: int = TIMEOUT_MS, max_chars: int = MAX_CHARS) -> None:
        self.session = session
        self.timeout_ms = timeout_ms
        self.max_chars = max_chars

    async def exec(self, command: str) -> str:
        """Run ``command`` in the shell (beside it, as a process, while another call has it: an agent's
        parallel tool calls never fail with ``shell_busy``); the outcome as text."""
        try:
            result = await _call(self.session, "exec", command, timeout_ms=self.timeout_ms, if_busy="process")
            return exec_text(result, self.max_chars)
        except SandkastenError as exc:
            return "error: %s" % exc.message

    async def write_file(self, path: str, content: str) -> str:
        """Write ``content`` to ``path``; what was written, as text."""
        try:
            size = await _call(self.session, "write", path, content)
        except SandkastenError as exc:
            return "error: %s" % exc.message
        return "wrote %s (%d bytes)" % (path, size)

    async def read_file(self, path: str) -> str:
        """The file's text, clipped to ``max_chars``."""
        try:
            return clip(await _call(self.session, "read", path), self.max_chars)
        except UnicodeDecodeError:
            return "error: %s is not a UTF-8 text file" % path
        except SandkastenError as exc:
            return "error: %s" % exc.message

    async def run_python(self, code: str) -> str:
        """Run ``code`` in the kernel; the outcome as text."""
        try:
            return code_text(await _call(self.session, "run_code", code, timeout_ms=self.timeout_ms), self.max_chars)
        except SandkastenError as exc:
            return "error: %s" % exc.message


__all__ = ["DESCRIPTIONS", "MAX_CHARS", "TIMEOUT_MS", "SandboxTools", "clip", "code_text", "exec_text"]
