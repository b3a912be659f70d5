"""An agent with a rich terminal UI: live output of every command it runs, tool calls shown as they
happen, and history (the conversation, and your previous prompts with the arrow keys).

    python quickstart/agent/enhanced_agent.py
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from _shared import agent, converse, parser, sandbox
from agents import Runner, function_tool
from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel

from sandkasten import Session
from sandkasten.tools import DESCRIPTIONS, exec_text
from sandkasten.tools.openai_agents import sandbox_tools

HISTORY = os.path.expanduser("~/.sandkasten_agent_history")
console = Console()


def streaming_exec(session: Session) -> Any:
    """``exec`` that shows the command's output live while the model waits for it."""

    @function_tool(name_override="exec", description_override=DESCRIPTIONS["exec"])
    async def exec_command(command: str) -> str:
        """:param command: the bash command line."""
        console.print("[bold cyan]$ %s[/]" % command)
        stream = session.exec_stream(command, timeout_ms=120_000)
        async for chunk in stream:
            console.out(chunk, end="", highlight=False)
        assert stream.result is not None
        style = "green" if stream.result.ok else "red"
        console.print("[%s]exit %s · %.0f ms[/]" % (style, stream.result.exit_code, stream.result.duration_ms))
        return exec_text(stream.result)

    return exec_command


def read_line(prompt: str) -> str:
    try:
        import readline  # arrow-key history where the platform has it

        if os.path.exists(HISTORY) and not readline.get_current_history_length():
            readline.read_history_file(HISTORY)
        line = input(prompt)
        readline.write_history_file(HISTORY)
        return line
    except ImportError:
        return input(prompt)


async def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    async with sandbox(args) as session:
        others = [tool for tool in sandbox_tools(session) if tool.name != "exec"]
        coder = agent(session, args.model, tools=[streaming_exec(session), *others])

        async def turn(conversation: list[Any]) -> list[Any]:
            with console.status("thinking…"):
                result = Runner.run_streamed(coder, conversation)
                async for event in result.stream_events():
                    if event.type == "run_item_stream_event" and event.name == "tool_called":
                        console.print("[dim]→ %s[/]" % getattr(event.item.raw_item, "name", "tool"))
            console.print(Panel(Markdown(str(result.final_output)), title="agent"))
            return result.to_input_list()

        console.print(Panel("sandbox [bold]%s[/] (%s) · empty line to quit" % (session.id, session.info.image)))
        await converse(read_line, turn)


if __name__ == "__main__":
    asyncio.run(main())
