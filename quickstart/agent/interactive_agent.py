# /// script
# requires-python = ">=3.10"
# dependencies = ["sandkasten[openai-agents]"]
#
# [tool.uv.sources]
# sandkasten = { path = "../../sdk/python", editable = true }  # this repository's SDK, beside the examples
# ///
"""An interactive agent: a REPL where each message goes to an agent that keeps one sandbox for the session.

uv run quickstart/agent/interactive_agent.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from _shared import agent, converse, parser, said, sandbox
from agents import Runner


async def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    async with sandbox(args) as session:
        coder = agent(session, args.model)

        async def turn(conversation: list[Any], message: str) -> list[Any]:
            result = await Runner.run(coder, said(conversation, message))
            print("agent>", result.final_output)
            return result.to_input_list()  # the agent remembers the whole exchange

        print("sandbox %s ready; empty line or Ctrl-D to quit" % session.id)
        await converse(input, turn)


if __name__ == "__main__":
    asyncio.run(main())
