"""E2B's code interpreter SDK (``e2b-code-interpreter``), unmodified, against Sandkasten: run_code and contexts.

Each test makes its sandboxes with ``with Sandbox.create()`` (or kills them), so none is left behind.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from e2b import NotFoundException, SandboxException
from e2b_code_interpreter import AsyncSandbox, Execution, ExecutionError, OutputMessage, Result, Sandbox

from sandkasten_server.e2b.base import E2BError
from sandkasten_server.e2b.code_contexts import DefaultContext, SandboxContexts
from sandkasten_server.e2b.context_kernels import MAX_CONTEXTS, create_context

pytestmark = pytest.mark.docker

# A 1x1 PNG, shown three ways: IPython's Image, a raw bundle, and as the kernel gives it back.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>'
EVERY_KIND = """
import base64
from IPython.display import HTML, JSON, SVG, Image, Latex, Markdown, Javascript, display
display(HTML("<b>bold</b>"))
display(Markdown("# Title"))
display(SVG(%(svg)r))
display(JSON({"a": [1, 2]}))
display(Latex(r"$x^2$"))
display(Image(data=base64.b64decode(%(png)r), format="png"))
display(Javascript("console.log(1)"))
display({"image/jpeg": "anBlZw==", "application/pdf": "cGRm", "text/plain": "raw", "application/x-mine": "m"}, raw=True)
"a string"
""" % {"svg": SVG, "png": base64.b64encode(PNG).decode()}


def test_results_in_every_mime_type_the_kernel_gives(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        execution = sbx.run_code("x = 41\nprint('hi')\nx + 1")
        assert execution.text == "42" and execution.logs.stdout == ["hi\n"] and execution.error is None
        assert execution.results[0].is_main_result and isinstance(execution.execution_count, int)

        results = sbx.run_code(EVERY_KIND).results
        shown = [r for r in results if not r.is_main_result]
        assert shown[0].html == "<b>bold</b>" and shown[1].markdown == "# Title"
        assert shown[2].svg is not None and shown[2].svg.startswith("<svg")
        assert shown[3].json == {"a": [1, 2]} and shown[4].latex == "$x^2$"
        assert shown[5].png is not None and base64.b64decode(shown[5].png) == PNG
        assert shown[6].javascript == "console.log(1)"
        raw = shown[7]
        assert (raw.jpeg, raw.pdf, raw.text) == ("anBlZw==", "cGRm", "raw")
        assert raw.extra == {"application/x-mine": "m"} and "application/x-mine" in raw.formats()
        main = results[-1]
        assert main.is_main_result and main.text == "a string" and main.extra == {}  # the repr's quotes go


def test_logs_errors_and_callbacks(e2b_env: dict[str, str]) -> None:
    seen: dict[str, list[Any]] = {"stdout": [], "stderr": [], "result": [], "error": []}
    with Sandbox.create() as sbx:
        execution = sbx.run_code(
            "import sys\nprint('out')\nprint('err', file=sys.stderr)\ndisplay(7)\n1 / 0",
            on_stdout=seen["stdout"].append,
            on_stderr=seen["stderr"].append,
            on_result=seen["result"].append,
            on_error=seen["error"].append,
        )
        assert execution.logs.stdout == ["out\n"] and execution.logs.stderr == ["err\n"]
        error = execution.error
        assert error is not None and (error.name, error.value) == ("ZeroDivisionError", "division by zero")
        traceback = re.sub(r"\x1b\[[0-9;]*m", "", error.traceback)  # IPython's colours, as E2B's server gives them
        assert "ZeroDivisionError" in traceback and "----> 5 1 / 0" in traceback
        assert [m.line for m in seen["stdout"]] == ["out\n"] and not seen["stdout"][0].error
        assert isinstance(seen["stderr"][0], OutputMessage) and seen["stderr"][0].error
        assert [r.text for r in seen["result"]] == ["7"] and isinstance(seen["result"][0], Result)
        assert isinstance(seen["error"][0], ExecutionError) and seen["error"][0].name == "ZeroDivisionError"

        # The kernel keeps its state after an error, and counts executions.
        later = sbx.run_code("sys.version_info.major")
        assert later.text == "3" and later.execution_count == execution.execution_count + 1

        syntax = sbx.run_code("def broken(:")
        assert syntax.error is not None and syntax.error.name == "SyntaxError"


def test_env_vars_hold_for_one_execution(e2b_env: dict[str, str]) -> None:
    with Sandbox.create(envs={"GREETING": "hello"}) as sbx:
        show = "import os, subprocess\n(os.environ.get('GREETING'), os.environ.get('ONLY_NOW'))"
        assert sbx.run_code(show).text == "('hello', None)"  # the sandbox's env, in its warm kernel too
        once = sbx.run_code(
            "    "
            + show.replace("\n", "\n    ")  # indented code: IPython removes the common indentation
            + "\n    subprocess.run(['sh', '-c', 'echo $ONLY_NOW'], capture_output=True, text=True).stdout",
            envs={"ONLY_NOW": "yes", "GREETING": "hi"},
        )
        assert once.error is None and once.text == "yes\\n" and once.execution_count is not None
        assert sbx.run_code(show).text == "('hello', None)"
        failed = sbx.run_code("raise ValueError(os.environ['ONLY_NOW'])", envs={"ONLY_NOW": "in the error"})
        assert failed.error is not None and failed.error.value == "in the error"
        assert sbx.run_code(show).text == "('hello', None)"  # restored after an error too


def test_files_the_kernel_writes_are_the_sandboxes(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        sbx.run_code("open('from_kernel.txt', 'w').write('written by the kernel')")
        assert sbx.commands.run("cat from_kernel.txt").stdout == "written by the kernel"
        assert sbx.files.read("/home/user/from_kernel.txt") == "written by the kernel"
        sbx.files.write("/home/user/to_kernel.txt", "written with files.write")
        assert sbx.run_code("import os\nopen('to_kernel.txt').read()").text == "written with files.write"
        assert sbx.run_code("os.getcwd()").text == "/workspace"  # E2B's /home/user


def test_the_default_context(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        sbx.run_code("kept = 1")
        (default,) = sbx.list_code_contexts()
        assert (default.language, default.cwd) == ("python", "/home/user")
        assert sbx.run_code("kept", context=default).text == "1"
        sbx.restart_code_context(default)
        assert sbx.run_code("'kept' in globals()").text == "False"
        with pytest.raises(SandboxException, match="default context"):
            sbx.remove_code_context(default)
        with pytest.raises(Exception, match="Context nope not found"):
            sbx.remove_code_context("nope")
        with pytest.raises(Exception, match="Only one of context_id or language"):
            _execute(e2b_env, sbx, {"code": "1", "context_id": default.id, "language": "python"})
        with pytest.raises(SandboxException, match="runs python"):
            sbx.run_code("1", language="javascript")


def test_contexts_are_kernels_of_their_own_over_the_same_files(e2b_env: dict[str, str]) -> None:
    with Sandbox.create(envs={"GREETING": "hello"}) as sbx:
        sbx.run_code("where = 'default'")
        (default,) = sbx.list_code_contexts()
        context = sbx.create_code_context()
        assert (context.language, context.cwd) == ("python", "/home/user") and context.id != default.id
        ran = sbx.run_code("where = 'context'\nopen('shared.txt', 'w').write('from the context')", context=context)
        assert ran.error is None
        assert sbx.run_code("where").text == "default" and sbx.run_code("where", context=context).text == "context"
        assert sbx.run_code("open('shared.txt').read()").text == "from the context"
        assert sbx.files.read("/home/user/shared.txt") == "from the context"
        shown = sbx.run_code(
            "import os\nos.environ['GREETING'], os.environ.get('ONCE')", context=context, envs={"ONCE": "1"}
        )
        assert shown.text == "('hello', '1')"  # the sandbox's env and this execution's
        assert sbx.run_code("os.environ.get('ONCE'), os.getcwd()", context=context).text == "(None, '/workspace')"

        sbx.files.make_dir("/home/user/sub")
        elsewhere = sbx.create_code_context(cwd="/home/user/sub", language="python")
        assert elsewhere.cwd == "/home/user/sub"
        assert sbx.run_code("import os\nos.getcwd()", context=elsewhere).text == "/workspace/sub"
        listed = {c.id: c.cwd for c in sbx.list_code_contexts()}
        assert listed == {default.id: "/home/user", context.id: "/home/user", elsewhere.id: "/home/user/sub"}

        sbx.restart_code_context(context)
        error = sbx.run_code("where", context=context).error
        assert error is not None and error.name == "NameError"
        assert sbx.run_code("where").text == "default"  # the other contexts keep their state

        sbx.remove_code_context(elsewhere.id)
        assert {c.id for c in sbx.list_code_contexts()} == {default.id, context.id}
        with pytest.raises(NotFoundException, match="Context %s not found" % elsewhere.id):
            sbx.run_code("1", context=elsewhere)
        with pytest.raises(SandboxException, match="not supported"):
            sbx.create_code_context(language="r")


def test_a_restart_ends_the_execution_under_way(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        context = sbx.create_code_context()
        seen: list[ExecutionError] = []

        def restart_soon() -> None:
            time.sleep(1.5)
            sbx.restart_code_context(context)

        restarter = threading.Thread(target=restart_soon)
        restarter.start()
        execution = sbx.run_code("import time\ntime.sleep(30)", context=context, on_error=seen.append)
        restarter.join()
        assert execution.error is not None and execution.error.name == "ContextRestarting" and len(seen) == 1
        assert sbx.run_code("1 + 1", context=context).text == "2"


def test_contexts_per_sandbox_are_bounded() -> None:
    contexts = SandboxContexts()
    contexts.extra = {str(n): DefaultContext(None, str(n)) for n in range(MAX_CONTEXTS)}  # type: ignore[arg-type]
    with pytest.raises(E2BError, match="at most %d contexts" % MAX_CONTEXTS) as error:
        asyncio.run(create_context(None, None, contexts, "/home/user"))  # type: ignore[arg-type]
    assert error.value.status == 400


def test_a_client_that_leaves_interrupts_the_kernel(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        started = time.monotonic()
        with pytest.raises(Exception, match="timed out"):
            sbx.run_code("import time\nfor i in range(60):\n    time.sleep(1)", timeout=2)
        # The next execution waits for the interrupted one: one keepalive interval, not a minute.
        execution = sbx.run_code("i")
        assert execution.error is None and int(execution.text or 0) < 20
        assert time.monotonic() - started < 20


def test_keepalives_while_silent(e2b_env: dict[str, str]) -> None:
    with Sandbox.create() as sbx:
        lines = _execute(e2b_env, sbx, {"code": "import time\ntime.sleep(6)\nprint('done')"})
        assert lines[0] == {"type": "keepalive"} and lines[-1] == {"type": "end_of_execution"}
        assert [line["type"] for line in lines[1:]] == ["stdout", "number_of_executions", "end_of_execution"]
        assert lines[1]["text"] == "done\n" and lines[1]["timestamp"].endswith("Z")


def test_async_sandbox(e2b_env: dict[str, str]) -> None:
    async def scenario() -> None:
        sbx = await AsyncSandbox.create()
        try:
            seen: list[str] = []
            execution = await sbx.run_code(
                "import asyncio\nprint('a')\nawait asyncio.sleep(0.1)\n{'k': 1}",
                on_stdout=lambda m: seen.append(m.line),
                envs={"ONLY_NOW": "async"},
            )
            assert isinstance(execution, Execution) and execution.text == "{'k': 1}" and seen == ["a\n"]
            assert (await sbx.run_code("import os\nos.environ.get('ONLY_NOW', 'unset')")).text == "unset"
            error = (await sbx.run_code("undefined_name")).error
            assert error is not None and error.name == "NameError"
            contexts = await sbx.list_code_contexts()
            assert len(contexts) == 1
            await sbx.restart_code_context(contexts[0])
            assert (await sbx.run_code("'os' in globals()")).text == "False"
        finally:
            await sbx.kill()

    asyncio.run(scenario())


def _execute(e2b_env: dict[str, str], sbx: Sandbox, body: dict[str, Any]) -> list[dict[str, Any]]:
    """``POST /execute`` as the SDKs send it; its NDJSON lines (an HTTP error raises)."""
    request = urllib.request.Request(
        e2b_env["E2B_SANDBOX_URL"] + "/execute",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "E2b-Sandbox-Id": sbx.sandbox_id,
            "E2b-Sandbox-Port": "49999",
            "E2B-Traffic-Access-Token": sbx.traffic_access_token or "",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return [json.loads(line) for line in response.read().decode().splitlines()]
    except urllib.error.HTTPError as exc:
        raise RuntimeError("%d: %s" % (exc.code, exc.read().decode())) from None
