# /// script
# requires-python = ">=3.10"
# dependencies = ["sandkasten[openai-agents]", "rich>=14.1"]
#
# [tool.uv.sources]
# sandkasten = { path = "../../sdk/python", editable = true }  # this repository's SDK, beside the examples
# ///
"""A sandbox terminal with a rich UI: each command's output live as it runs, a history of the commands run.

    uv run quickstart/agent/enhanced_agent.py

With OPENAI_API_KEY set, what you type goes to an agent that works in the sandbox (its commands stream
the same way, its other tool calls are shown as they happen); without it, every line is a shell
command. Either way `!COMMAND` runs COMMAND yourself, `!history` lists the commands run (by you and by
the agent, in this and earlier sessions), `!N` runs number N again, and the arrow keys recall what you
typed. Both histories live in $XDG_DATA_HOME/sandkasten/agent/ (~/.local/share/sandkasten/agent/).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from _shared import Turn, agent, converse, parser, said, sandbox
from agents import FunctionTool, Runner, function_tool
from rich.console import Console, Group
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sandkasten import ExecResult, Session
from sandkasten.tools import DESCRIPTIONS, exec_text
from sandkasten.tools.openai_agents import sandbox_tools

TIMEOUT_MS = 120_000
SHOWN = 20  # the commands !history lists
LINES = 500  # of a finished command's output (the agent reads the whole, up to the SDK's limit)
console = Console()


def data_dir() -> Path:
    """Where the histories are kept: beside the server's own files in the user's data directory."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "sandkasten" / "agent"


class History:
    """The commands run, oldest first, kept in a file of one JSON object a line ({"command", "by", "exit"})."""

    def __init__(self, path: Path) -> None:
        self.path = path
        lines = path.read_text().splitlines() if path.exists() else []
        self.entries: list[dict[str, Any]] = [json.loads(line) for line in lines if line.strip()]

    def add(self, command: str, by: str, exit_code: int | None) -> None:
        entry = {"command": command, "by": by, "exit": exit_code}
        self.entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as file:
            file.write(json.dumps(entry) + "\n")

    def table(self) -> Table:
        table = Table("#", "by", "exit", "command", title="history (%s)" % self.path, title_justify="left")
        for number, entry in list(enumerate(self.entries, 1))[-SHOWN:]:
            exit_code = "timeout" if entry["exit"] is None else str(entry["exit"])
            table.add_row(str(number), entry["by"], exit_code, Text(entry["command"]))
        return table


def card(command: str, by: str, output: str, result: ExecResult | None) -> Panel:
    """A command and its output in a panel: the last screenful while it runs, the last LINES when done."""
    keep = LINES if result else max(console.height - 8, 3)
    lines = output.rstrip().rsplit("\n", keep)  # from the end: a long output costs no more than a short one
    parts = [Text("$ " + command, style="bold cyan")]
    if result and len(lines) > keep:  # counted once, at the end
        parts.append(Text("… %d earlier lines" % (lines[0].count("\n") + 1), style="dim"))
    if output.strip():
        parts.append(Text.from_ansi("\n".join(lines[-keep:])))
    if result is None:
        status, style = "running…", "yellow"
    elif result.timed_out:
        status, style = "timed out after %.0f ms" % result.duration_ms, "red"
    else:
        status, style = "exit %s · %.0f ms" % (result.exit_code, result.duration_ms), "green" if result.ok else "red"
    return Panel(
        Group(*parts), title=by, title_align="left", subtitle=status, subtitle_align="right", border_style=style
    )


class Terminal:
    """Runs commands in the session's shell, shows them live, and keeps them in the history."""

    def __init__(self, session: Session, history: History) -> None:
        self.session = session
        self.history = history

    async def run(self, command: str, by: str) -> ExecResult:
        output = ""
        # A file or a pipe gets the finished card alone (Live would leave it without its newline).
        with Live(card(command, by, output, None), console=console, transient=not console.is_terminal) as live:
            stream = self.session.exec_stream(command, timeout_ms=TIMEOUT_MS)
            async for chunk in stream:
                output += chunk
                live.update(card(command, by, output, None))
            assert stream.result is not None
            live.update(card(command, by, output, stream.result))
        if not console.is_terminal:
            console.print(card(command, by, output, stream.result))
        self.history.add(command, by, stream.result.exit_code)
        return stream.result

    async def bang(self, line: str) -> None:
        """``!history``, ``!N`` (run number N again) or ``!COMMAND``."""
        request = line.strip()[1:].strip()
        if request == "history":
            console.print(self.history.table())
        elif request.isdigit():
            number = int(request)
            if not 1 <= number <= len(self.history.entries):
                console.print("[red]no command %d in the history (1 to %d)[/]" % (number, len(self.history.entries)))
                return
            await self.run(self.history.entries[number - 1]["command"], "you")
        elif request:
            await self.run(request, "you")

    def exec_tool(self) -> FunctionTool:
        """The agent's ``exec``, through this terminal: the model reads the result, you watch it run."""

        @function_tool(name_override="exec", description_override=DESCRIPTIONS["exec"])
        async def exec_command(command: str) -> str:
            """:param command: the bash command line."""
            return exec_text(await self.run(command, "agent"))

        return exec_command


def shell_turn(terminal: Terminal) -> Turn:
    """Without a model: every line is a command (``!`` lines as with the agent)."""

    async def turn(conversation: list[Any], line: str) -> list[Any]:
        if line.lstrip().startswith("!"):
            await terminal.bang(line)
        else:
            await terminal.run(line, "you")
        return conversation

    return turn


def agent_turn(terminal: Terminal, model: str) -> Turn:
    """With a model: each message goes to the agent with the conversation so far."""
    others = [tool for tool in sandbox_tools(terminal.session) if tool.name != "exec"]
    coder = agent(terminal.session, model, tools=[terminal.exec_tool(), *others])

    async def turn(conversation: list[Any], line: str) -> list[Any]:
        if line.lstrip().startswith("!"):
            await terminal.bang(line)
            return conversation
        with console.status("thinking…"):
            result = Runner.run_streamed(coder, said(conversation, line))
            async for event in result.stream_events():
                if event.type == "run_item_stream_event" and event.name == "tool_called":
                    name = getattr(event.item.raw_item, "name", "tool")
                    if name != "exec":  # exec shows itself
                        console.print("[dim]→ %s[/]" % name)
        console.print(Panel(Markdown(str(result.final_output)), title="agent", title_align="left"))
        return result.to_input_list()

    return turn


def read_line(prompt: str) -> str:
    """``input``, with the arrow keys recalling earlier lines where the platform has readline."""
    if not sys.stdin.isatty():
        return input()  # lines from a pipe or a file: no prompt, no history
    try:
        import readline
    except ImportError:
        return input(prompt)
    prompts = data_dir() / "prompts"
    if prompts.exists() and not readline.get_current_history_length():
        readline.read_history_file(prompts)
    readline.set_history_length(1000)  # lines kept in the file
    line = input(prompt)
    prompts.parent.mkdir(parents=True, exist_ok=True)
    readline.write_history_file(prompts)
    return line


async def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    with_model = bool(os.environ.get("OPENAI_API_KEY"))
    async with sandbox(args, needs=("SANDKASTEN_API_KEY",)) as session:
        terminal = Terminal(session, History(data_dir() / "commands.jsonl"))
        mode = "agent (%s)" % args.model if with_model else "shell (set OPENAI_API_KEY for the agent)"
        console.print(
            Panel(
                "sandbox [bold]%s[/] (%s) · %s\n!history lists the commands run, !N runs one again, "
                "!COMMAND runs a command yourself; an empty line quits" % (session.id, session.info.image, mode)
            )
        )
        turn = agent_turn(terminal, args.model) if with_model else shell_turn(terminal)
        await converse(read_line, turn, "you> " if with_model else "$ ")


if __name__ == "__main__":
    asyncio.run(main())
