"""run_code: the session's kernel under Jupyter Server's kernel manager, open to a person too."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from typing import Any

import pytest

from tests.provisioner.test_server import execute_over_websocket
from tests.server.conftest import Api

pytestmark = pytest.mark.docker

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def run_code(api: Api, session_id: str, code: str, **options: Any) -> dict[str, Any]:
    reply = api.post("sessions/%s/run_code" % session_id, {"code": code, **options})
    assert reply.status == 200, reply.body
    result: dict[str, Any] = reply.json
    return result


def test_outputs_results_and_errors(api: Api) -> None:
    api.wait_warm()
    session_id = api.session()
    result = run_code(api, session_id, "x = 41\nprint('out'); import sys; print('err', file=sys.stderr)\nx + 1")
    assert (result["stdout"], result["stderr"]) == ("out\n", "err\n")
    assert result["results"] == [{"kind": "execute_result", "data": {"text/plain": "42"}, "metadata": {}}]
    assert result["error"] is None and not result["timed_out"] and result["execution_count"] == 1

    png = "from IPython.display import Image, display; import base64\ndisplay(Image(data=base64.b64decode(%r)))"
    shown = run_code(api, session_id, png % base64.b64encode(PNG).decode())
    assert base64.b64decode(shown["results"][0]["data"]["image/png"]) == PNG

    failed = run_code(api, session_id, "x / 0")
    assert failed["error"]["ename"] == "ZeroDivisionError"
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(failed["error"]["traceback"]))  # no colours
    assert "x / 0" in traceback and "division by zero" in traceback
    assert run_code(api, session_id, "x")["results"][0]["data"]["text/plain"] == "41"


def test_a_person_can_take_over_the_agents_kernel(api: Api, jp_fetch: Any, jp_ws_fetch: Any) -> None:
    session_id = api.session()
    api.exec(session_id, "echo shared-file > /workspace/note.txt")
    result = run_code(api, session_id, "agent_variable = 'set by the agent'")
    kernel_id = result["kernel_id"]

    kernels = json.loads(api.run(jp_fetch("api", "kernels")).body)
    assert [k["id"] for k in kernels] == [kernel_id]
    assert api.get("sessions/%s" % session_id).json["kernel"]["id"] == kernel_id

    code = "print(agent_variable, open('/workspace/note.txt').read().strip()); person_variable = 7"
    output = api.run(execute_over_websocket(jp_ws_fetch, kernel_id, code))
    assert output == "set by the agent shared-file\n"
    assert run_code(api, session_id, "person_variable * 6")["results"][0]["data"]["text/plain"] == "42"

    # The person shuts the kernel down: the session stays, and the next run_code starts a new kernel.
    api.run(jp_fetch("api", "kernels", kernel_id, method="DELETE"))
    assert api.get("sessions/%s" % session_id).json["kernel"] is None
    again = run_code(api, session_id, "print(open('/workspace/note.txt').read())")
    assert again["kernel_id"] != kernel_id and again["stdout"] == "shared-file\n\n"

    assert api.delete("sessions/%s" % session_id).status == 204
    # The kernel died with the sandbox; Jupyter's kernel manager lets go of it just after the reply.
    deadline = time.monotonic() + 30
    while json.loads(api.run(jp_fetch("api", "kernels")).body) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(api.run(jp_fetch("api", "kernels")).body) == []


def test_with_kernel_at_create(api: Api) -> None:
    api.wait_warm()
    created = api.post("sessions", {"with_kernel": True})
    assert created.status == 201
    kernel = created.json["kernel"]
    assert kernel["id"] and kernel["execution_state"] in ("idle", "starting", "busy")
    assert run_code(api, created.json["id"], "1")["kernel_id"] == kernel["id"]


def test_a_warm_sessions_env_reaches_its_running_kernel_and_what_starts_later(api: Api, jp_fetch: Any) -> None:
    # The warm sandbox's kernel started before the session, with none of these; a cold one inherits them.
    api.wait_warm()
    env = {"SK_GREETING": "hi there", "SK_QUOTED": 'it\'s "x" $HOME \\n'}
    created = api.post("sessions", {"env": env, "with_kernel": True})
    assert created.status == 201 and created.json["warm"]
    session_id, kernel_id = created.json["id"], created.json["kernel"]["id"]
    code = (
        "import os, subprocess\n"
        "print(os.environ['SK_GREETING'], os.environ['SK_QUOTED'])\n"
        "print(subprocess.run('echo $SK_GREETING', shell=True, capture_output=True, text=True).stdout, end='')\n"
        "print('_sk_os' in dir())"
    )
    expected = "hi there %s\nhi there\nFalse\n" % env["SK_QUOTED"]
    assert run_code(api, session_id, code)["stdout"] == expected
    assert api.exec(session_id, "echo $SK_GREETING")["output"] == "hi there\n"

    # A restarted kernel is the runner's start, from the environment the session's were given to.
    api.run(jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body=b""))
    assert run_code(api, session_id, code)["stdout"] == expected


def test_run_code_right_after_a_restart_through_jupyter_gets_its_output(api: Api, jp_fetch: Any) -> None:
    # A client of the old kernel process reconnected on its own, its iopub socket after its shell socket:
    # 3 of 15 such runs lost their output and waited out their timeout. It fails 9 times in 10 without the fix.
    api.wait_warm()
    created = api.post("sessions", {"with_kernel": True})
    session_id, kernel_id = created.json["id"], created.json["kernel"]["id"]
    assert run_code(api, session_id, "print('before')")["stdout"] == "before\n"
    for round_number in range(10):
        api.run(jp_fetch("api", "kernels", kernel_id, "restart", method="POST", body=b""))
        result = run_code(api, session_id, "print(%d)" % round_number, timeout_ms=20_000)
        assert (result["stdout"], result["timed_out"]) == ("%d\n" % round_number, False), result


def test_timeout_interrupts_and_keeps_state(api: Api) -> None:
    session_id = api.session()
    run_code(api, session_id, "kept = 'still here'")
    result = run_code(api, session_id, "import time\nprint('before', flush=True)\ntime.sleep(30)", timeout_ms=1500)
    assert result["timed_out"] and not result["kernel_restarted"]
    assert result["stdout"] == "before\n" and result["error"]["ename"] == "KeyboardInterrupt"
    assert result["duration_ms"] < 10_000
    assert run_code(api, session_id, "kept")["results"][0]["data"]["text/plain"] == "'still here'"


def test_timeout_restarts_a_kernel_that_ignores_the_interrupt(api: Api) -> None:
    session_id = api.session()
    run_code(api, session_id, "lost = 1")
    stubborn = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    result = run_code(api, session_id, stubborn, timeout_ms=1000)
    assert result["timed_out"] and result["kernel_restarted"]
    after = run_code(api, session_id, "'lost' in globals(), 6 * 7")
    assert after["results"] and after["results"][0]["data"]["text/plain"] == "(False, 42)", json.dumps(after)


def test_streamed_run_code(api: Api) -> None:
    session_id = api.session()
    code = "import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('b')\n'done'"
    reply = api.post("sessions/%s/run_code" % session_id, {"code": code, "stream": True})
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/x-ndjson"
    events = [json.loads(line) for line in reply.body.splitlines()]
    assert [e["type"] for e in events] == ["stdout", "stdout", "result", "done"]
    assert events[-1]["stdout"] == "a\nb\n" and events[-1]["results"][0]["data"]["text/plain"] == "'done'"


def test_bad_run_code_requests(api: Api) -> None:
    session_id = api.session()
    for body, field in [({}, "code"), ({"code": 1}, "code"), ({"code": "1", "timeout_ms": 0}, "timeout_ms")]:
        reply = api.post("sessions/%s/run_code" % session_id, body)
        assert reply.status == 400 and field in reply.json["message"], reply.body


def test_a_person_in_the_kernel_keeps_the_session_from_the_idle_reaper(api: Api, jp_ws_fetch: Any) -> None:
    settings = api.service.settings.session
    settings.idle_timeout_s, settings.reap_interval_s = 3, 0.5
    session_id = api.session()
    kernel_id = run_code(api, session_id, "n = 0")["kernel_id"]
    for _ in range(6):  # 6 s of work through /api/kernels only: the session API sees no call
        api.run(execute_over_websocket(jp_ws_fetch, kernel_id, "n += 1"))
        api.run(asyncio.sleep(1))
    assert api.get("sessions/%s" % session_id).status == 200
    api.run(asyncio.sleep(5))  # idle now: the restarter's polls of the kernel do not count as use
    assert api.get("sessions/%s" % session_id).status == 404
    assert kernel_id not in api.service.kernels.kernel_manager  # its kernel went with it


def test_output_past_max_output_is_dropped_and_the_result_says_so(api: Api) -> None:
    session_id = api.session()
    result = run_code(api, session_id, "print('a' * 3000); print('b' * 3000)", max_output=4000)
    assert result["stdout"] == "a" * 3000 + "\n" + "b" * 999
    assert result["truncated"] is True and result["output_bytes"] == 6002
    whole = run_code(api, session_id, "print('fits')")
    assert whole["stdout"] == "fits\n" and whole["truncated"] is False

    # A rich result is kept whole or not at all; the error is cut to what is left.
    big = run_code(
        api, session_id, "from IPython.display import display\ndisplay({'text/plain': 'p' * 5000}, raw=True)"
    )
    assert big["results"][0]["data"]["text/plain"] == "p" * 5000 and not big["truncated"]  # under the default
    cut = run_code(api, session_id, "print('c' * 90); raise ValueError('v' * 5000)", max_output=200)
    assert cut["truncated"] and cut["error"]["ename"] == "ValueError" and len(cut["error"]["evalue"]) < 200
    shown = run_code(api, session_id, "display({'text/plain': 'p' * 5000}, raw=True); print('after')", max_output=100)
    assert shown["results"] == [] and shown["stdout"] == "after\n" and shown["truncated"]

    # Streamed: no output event past the cap, and the code ran to its end.
    reply = api.post(
        "sessions/%s/run_code" % session_id,
        {"code": "for i in range(200): print(i)\nfinished = True", "stream": True, "max_output": 20},
    )
    events = [json.loads(line) for line in reply.body.splitlines()]
    assert "".join(e["text"] for e in events if e["type"] == "stdout") == "".join("%d\n" % i for i in range(200))[:20]
    assert events[-1]["type"] == "done" and events[-1]["truncated"] is True
    assert run_code(api, session_id, "finished")["results"][0]["data"]["text/plain"] == "True"

    too_big = api.post("sessions/%s/run_code" % session_id, {"code": "1", "max_output": (16 << 20) + 1})
    assert too_big.status == 400 and "max_output" in too_big.json["message"]
