"""What the three example agents share: settings from the environment, the model, the agent itself."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from agents import Agent

from sandkasten import SandboxClient, Session
from sandkasten.tools.openai_agents import sandbox_tools

INSTRUCTIONS = (
    "You are a careful software engineer working in a Linux sandbox. Solve the user's task by writing files "
    "into /workspace and running them with the tools; check your work by running it. The shell keeps its "
    "state between calls, and so does the Python kernel. Answer briefly, with the result."
)


def parser(description: str) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(description=description)
    options.add_argument("--model", default=os.environ.get("OPENAI_MODEL", "gpt-4.1-mini"), help="the OpenAI model")
    options.add_argument("--image", default="python", help="sandbox image: base, python or node")
    options.add_argument("--workspace", help="a named workspace to keep /workspace between runs")
    return options


def require_environment(names: tuple[str, ...]) -> None:
    """Say what is missing, in one line, instead of failing deep inside a library."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        sys.exit(
            "set %s first (SANDKASTEN_URL defaults to http://127.0.0.1:8080; see quickstart/agent/README.md)"
            % " and ".join(missing)
        )


@contextlib.asynccontextmanager
async def sandbox(
    args: argparse.Namespace, needs: tuple[str, ...] = ("OPENAI_API_KEY", "SANDKASTEN_API_KEY")
) -> AsyncIterator[Session]:
    """A session for the agent (after checking that ``needs`` are set), destroyed at the end."""
    require_environment(needs)
    async with (
        SandboxClient(os.environ.get("SANDKASTEN_URL"), os.environ["SANDKASTEN_API_KEY"]) as client,
        await client.create_session(image=args.image, workspace=args.workspace) as session,
    ):
        yield session


def agent(session: Session, model: str, **overrides: Any) -> Agent[Any]:
    tools = overrides.pop("tools", None) or sandbox_tools(session)
    return Agent(name="sandkasten-coder", instructions=INSTRUCTIONS, tools=tools, model=model, **overrides)


Turn = Callable[[list[Any], str], Awaitable[list[Any]]]


async def converse(read: Callable[[str], str], turn: Turn, prompt: str = "you> ") -> None:
    """The REPL: each line, with the conversation so far, goes to ``turn``, which returns the new
    conversation. An empty line or end of input ends it."""
    conversation: list[Any] = []
    while True:
        try:
            line = await asyncio.to_thread(read, prompt)
        except EOFError:
            return
        if not line.strip():
            return
        conversation = await turn(conversation, line)


def said(conversation: list[Any], message: str) -> list[Any]:
    """The conversation with the user's ``message`` added, as the Agents SDK takes it."""
    return [*conversation, {"role": "user", "content": message}]
