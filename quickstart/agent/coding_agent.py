# /// script
# requires-python = ">=3.10"
# dependencies = ["sandkasten[openai-agents]"]
#
# [tool.uv.sources]
# sandkasten = { path = "../../sdk/python", editable = true }  # this repository's SDK, beside the examples
# ///
"""A task-based coding agent: give it a task, it works in a fresh sandbox and prints the answer.

uv run quickstart/agent/coding_agent.py "Find the 30th Fibonacci number with a Python program"
"""

from __future__ import annotations

import asyncio

from _shared import agent, parser, sandbox
from agents import Runner


async def main() -> None:
    options = parser(__doc__.splitlines()[0])
    options.add_argument("task", help="what the agent should do")
    options.add_argument("--max-turns", type=int, default=20, help="tool calls and replies before it stops")
    args = options.parse_args()
    async with sandbox(args) as session:
        result = await Runner.run(agent(session, args.model), args.task, max_turns=args.max_turns)
        print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())
