"""The agent tools, invoked the way each framework invokes them, driven by scripted models (no network LLM)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
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


# What a scripted model does next, given the tool outputs it was sent so far (``function_call_output`` items):
# call tools (several: one turn of parallel calls), or answer with text.
NextTurn = Callable[[list[dict[str, Any]]], "list[tuple[str, dict[str, str]]] | str"]


def scripted_model(next_turn: NextTurn) -> Any:
    """An OpenAI Agents SDK ``Model`` that plays ``next_turn`` (no network LLM); its tool calls are numbered
    ``call-1``, ``call-2``, ... across turns."""
    from agents import ModelResponse, Usage, set_tracing_disabled
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    set_tracing_disabled(True)  # no network here: nothing to export traces to

    class ScriptedModel(Model):
        calls = 0

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
            returned = [item for item in input if isinstance(item, dict) and item.get("type") == "function_call_output"]
            step = next_turn(returned)
            if isinstance(step, str):
                text = ResponseOutputText(type="output_text", text=step, annotations=[])
                message = ResponseOutputMessage(
                    id="msg-1", type="message", role="assistant", status="completed", content=[text]
                )
                return ModelResponse(output=[message], usage=Usage(), response_id=None)
            output: list[Any] = []
            for name, arguments in step:
                self.calls += 1
                call_id, arguments_json = "call-%d" % self.calls, json.dumps(arguments)
                output.append(
                    ResponseFunctionToolCall(type="function_call", call_id=call_id, name=name, arguments=arguments_json)
                )
            return ModelResponse(output=output, usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            raise NotImplementedError("the scripted model does not stream")

    return ScriptedModel()


async def test_openai_agents_runner_with_a_scripted_model(served: Served) -> None:
    from agents import Agent, ModelSettings, Runner

    from sandkasten.tools.openai_agents import sandbox_tools

    seen: list[str] = []

    def next_turn(returned: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]] | str:
        """The tools of STEPS one at a time, then the answer that the third tool output gave."""
        seen[:] = [item["output"] for item in returned]
        return [STEPS[len(returned)]] if len(returned) < len(STEPS) else "The answer is %s" % seen[2]

    async with (
        SandboxClient(base_url=served.base_url, api_key=served.api_key) as client,
        await client.create_session() as session,
    ):
        agent = Agent(
            name="coder",
            instructions="Solve the task with the sandbox tools.",
            tools=sandbox_tools(session),
            model=scripted_model(next_turn),
            model_settings=ModelSettings(),
        )
        result = await Runner.run(agent, "Compute 6 * 7 with a program and tell me the answer.")
        assert result.final_output == "The answer is 42"
        assert seen[0] == "wrote answer.py (%d bytes)" % len(PROGRAM)
        assert seen[1] == "exit code 0\ncomputed\n"
        assert seen[3] == "result: 42"
        assert await session.read("answer.txt") == "42"


async def test_parallel_tool_calls_of_one_turn_all_run(served: Served) -> None:
    """The OpenAI Agents SDK runs a turn's tool calls concurrently: the ones that find the shell busy run
    beside it, none fails with shell_busy, and they overlap in time."""
    from agents import Agent, ModelSettings, Runner

    from sandkasten.tools.openai_agents import sandbox_tools

    # Each prints when it began and ended (sandbox clock), and its own mark.
    commands = ["date +%%s.%%N; sleep 1; echo mark-%d; date +%%s.%%N" % i for i in range(1, 4)]
    calls: list[tuple[str, dict[str, str]]] = [("exec", {"command": c}) for c in commands]
    calls.append(("write_file", {"path": "side.txt", "content": "written meanwhile"}))
    outputs: dict[str, str] = {}

    def next_turn(returned: list[dict[str, Any]]) -> list[tuple[str, dict[str, str]]] | str:
        """One turn of four tool calls at once (call-1 to call-4), then an answer."""
        outputs.update({item["call_id"]: item["output"] for item in returned})
        return "%d results" % len(returned) if returned else calls

    async with (
        SandboxClient(base_url=served.base_url, api_key=served.api_key) as client,
        await client.create_session() as session,
    ):
        agent = Agent(
            name="parallel",
            instructions="Run them all.",
            tools=sandbox_tools(session),
            model=scripted_model(next_turn),
            model_settings=ModelSettings(parallel_tool_calls=True),
        )
        result = await Runner.run(agent, "Run three commands and write a file, all at once.")
        assert result.final_output == "4 results"
        assert not [o for o in outputs.values() if o.startswith("error:")], outputs  # shell_busy, say
        spans = []
        for n in range(1, 4):
            text = outputs["call-%d" % n]
            assert text.startswith("exit code 0"), text
            began, mark, ended = text.splitlines()[1:]
            assert mark == "mark-%d" % n
            spans.append((float(began), float(ended)))
        assert "ran beside the busy shell" in json.dumps(outputs)  # the shell had one, processes the rest
        assert max(b for b, _ in spans) < min(e for _, e in spans), spans  # all three ran at the same time
        assert outputs["call-4"] == "wrote side.txt (17 bytes)"
        assert await session.read("side.txt") == "written meanwhile"


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
