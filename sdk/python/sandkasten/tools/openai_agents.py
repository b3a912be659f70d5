"""The sandbox tools as OpenAI Agents SDK function tools (``pip install 'sandkasten[openai-agents]'``).

from agents import Agent
from sandkasten.tools.openai_agents import sandbox_tools

agent = Agent(name="coder", instructions="...", tools=sandbox_tools(session))
"""

from __future__ import annotations

try:
    from agents import Tool, function_tool
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError("sandkasten.tools.openai_agents needs: pip install 'sandkasten[openai-agents]'") from exc

from . import DESCRIPTIONS, MAX_CHARS, TIMEOUT_MS, AnySession, SandboxTools


def sandbox_tools(session: AnySession, *, timeout_ms: int = TIMEOUT_MS, max_chars: int = MAX_CHARS) -> list[Tool]:
    """exec, write_file, read_file and run_python on ``session``; options as ``SandboxTools``."""
    tools = SandboxTools(session, timeout_ms=timeout_ms, max_chars=max_chars)

    @function_tool(name_override="exec", description_override=DESCRIPTIONS["exec"])
    async def exec_command(command: str) -> str:
        """:param command: the bash command line."""
        return await tools.exec(command)

    @function_tool(description_override=DESCRIPTIONS["write_file"])
    async def write_file(path: str, content: str) -> str:
        """:param path: relative to /workspace. :param content: the whole text of the file."""
        return await tools.write_file(path, content)

    @function_tool(description_override=DESCRIPTIONS["read_file"])
    async def read_file(path: str) -> str:
        """:param path: relative to /workspace."""
        return await tools.read_file(path)

    @function_tool(description_override=DESCRIPTIONS["run_python"])
    async def run_python(code: str) -> str:
        """:param code: Python source."""
        return await tools.run_python(code)

    return [exec_command, write_file, read_file, run_python]
