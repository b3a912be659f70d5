"""The sandbox tools as LangChain tools (``pip install 'sandkasten[langchain]'``).

    from sandkasten.tools.langchain import sandbox_tools
    model_with_tools = chat_model.bind_tools(sandbox_tools(session))

With an async ``Session`` use the tools through ``ainvoke``; with a ``SyncSession``
both ``invoke`` and ``ainvoke`` work.
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from langchain_core.tools import BaseTool
    from pydantic import BaseModel, Field
except ImportError as exc:  # pragma: no cover - depends on the extra
    raise ImportError("sandkasten.tools.langchain needs: pip install 'sandkasten[langchain]'") from exc

from .._async_client import Session
from . import DESCRIPTIONS, MAX_CHARS, TIMEOUT_MS, AnySession, SandboxTools


class _CommandArgs(BaseModel):
    command: str = Field(description="the bash command line")


class _WriteArgs(BaseModel):
    path: str = Field(description="relative to /workspace")
    content: str = Field(description="the whole text of the file")


class _PathArgs(BaseModel):
    path: str = Field(description="relative to /workspace")


class _CodeArgs(BaseModel):
    code: str = Field(description="Python source")


class SandboxTool(BaseTool):
    """One sandbox tool; ``action`` names the ``SandboxTools`` method it calls."""

    tools: Any  # SandboxTools (typed loosely: pydantic validates fields)
    action: str

    async def _arun(self, **kwargs: Any) -> str:
        result: str = await getattr(self.tools, self.action)(**kwargs)
        return result

    def _run(self, **kwargs: Any) -> str:
        if isinstance(self.tools.session, Session):
            raise RuntimeError("this tool drives an async Session: use ainvoke, or build it on a SyncSession")
        return asyncio.run(self._arun(**kwargs))


def sandbox_tools(session: AnySession, *, timeout_ms: int = TIMEOUT_MS, max_chars: int = MAX_CHARS) -> list[BaseTool]:
    """exec, write_file, read_file and run_python on ``session``; options as ``SandboxTools``."""
    tools = SandboxTools(session, timeout_ms=timeout_ms, max_chars=max_chars)
    specs: list[tuple[str, type[BaseModel]]] = [
        ("exec", _CommandArgs),
        ("write_file", _WriteArgs),
        ("read_file", _PathArgs),
        ("run_python", _CodeArgs),
    ]
    return [
        SandboxTool(name=name, description=DESCRIPTIONS[name], args_schema=schema, tools=tools, action=name)
        for name, schema in specs
    ]
