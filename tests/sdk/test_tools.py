"""The agent tools, invoked the way each framework invokes them, driven by scripted models (no network LLM)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandkasten import ExecResult, SandboxClient, SyncSandboxClient
from sandkasten.tools import clip, exec_text
from sandkasten_server.launcher import Served

pytestmark = pytest.mark.docker

# The task the scripted models carry out: write a program, run it, read its answer back.
PROGRAM = "open('answer.txt', 'w').write(str(6 * 7))\nprint('computed')"
STEPS: list[tuple[str, dict[str, str]]] = [
    ("write_file", {"path": "answer.py", "content": PROGRAM}),
    ("exec", {"command": "python3 answer.py"}),
    ("read_file", {"path": "answer.txt"}),
    ("run_python", {"code": "int(open('/workspace/answer.txt').read()) + 0"}),
]


def test_model_friendly_text() -> None:
    long = "x" * 9000 + "THE END"
    clipped = clip(long)
    assert clipped.startswith("[output truncated: showing the last 8000 of 9007 characters]") and clipped.endswith(
        "THE END"
    )
    timed = ExecResult(output="", exit_code=None, timed_out=True, truncated=False, duration_ms=1000.0)
    assert exec_text(timed).startswith("timed out after 1000 ms")
    assert exec_text(ExecResult("hi\n", 0, False, False, 1.0)) == "exit code 0\nhi\n"


async def test_openai_agents_runner_with_a_scripted_model(served: Served) -> None:
    from agents import Agent, ModelResponse, ModelSettings, Runner, Usage, set_tracing_disabled
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    from sandkasten.tools.openai_agents import sandbox_tools

    set_tracing_disabled(True)  # no network here: nothing to export traces to

    class ScriptedModel(Model):
        """Calls the tools of STEPS in turn, then answers with the last tool output it was given."""

        def __init__(self) -> None:
            self.turn = 0
            self.seen: list[str] = []

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
            outputs = [
                item["output"]
                for item in input
                if isinstance(item, dict) and item.get("type") == "function_call_output"
            ]
            self.seen = outputs
            if self.turn < len(STEPS):
                name, arguments = STEPS[self.turn]
                self.turn += 1
                call = ResponseFunctionToolCall(
                    type="function_call", call_id="call-%d" % self.turn, name=name, arguments=json.dumps(arguments)
                )
                return ModelResponse(output=[call], usage=Usage(), response_id=None)
            text = ResponseOutputText(type="output_text", text="The answer is %s" % outputs[2], annotations=[])
            message = ResponseOutputMessage(
                id="msg-1", type="message", role="assistant", status="completed", content=[text]
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError("the scripted model does not stream")

    async with (
        SandboxClient(base_url=served.base_url, api_key=served.api_key) as client,
        await client.create_session() as session,
    ):
        model = ScriptedModel()
        agent = Agent(
            name="coder",
            instructions="Solve the task with the sandbox tools.",
            tools=sandbox_tools(session),
            model=model,
            model_settings=ModelSettings(),
        )
        result = await Runner.run(agent, "Compute 6 * 7 with a program and tell me the answer.")
        assert result.final_output == "The answer is 42"
        assert model.seen[0] == "wrote answer.py (%d bytes)" % len(PROGRAM)
        assert model.seen[1] == "exit code 0\ncomputed\n"
        assert model.seen[3] == "result: 42"
        assert await session.read("answer.txt") == "42"


def test_langchain_tools_in_a_tool_calling_loop(served: Served) -> None:
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

    from sandkasten.tools.langchain import sandbox_tools

    script: list[BaseMessage] = [
        *(
            AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "call-%d" % i}])
            for i, (name, args) in enumerate(STEPS)
        ),
        AIMessage(content="done"),
    ]
    model = FakeMessagesListChatModel(responses=script)

    with SyncSandboxClient(served.base_url, served.api_key) as client, client.create_session() as session:
        tools = {tool.name: tool for tool in sandbox_tools(session)}
        assert set(tools) == {"exec", "write_file", "read_file", "run_python"}
        messages: list[Any] = [HumanMessage(content="Compute 6 * 7 with a program.")]
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            for call in reply.tool_calls:
                messages.append(tools[call["name"]].invoke(call))  # a ToolCall in, a ToolMessage out
        results = [m for m in messages if isinstance(m, ToolMessage)]
        assert [m.content for m in results[1:]] == ["exit code 0\ncomputed\n", "42", "result: 42"]
        bad = tools["read_file"].invoke({"path": "missing.txt"})
        assert bad.startswith("error: ") and "missing.txt" in bad
