"""The lines of E2B's ``/execute`` stream, made from the kernel's events (``SessionKernels.run``).

E2B's SDKs read each line as one JSON object and build their ``Execution``
from it: ``stdout``/``stderr`` with a timestamp, ``result`` with one key per
MIME type (the rest in ``extra``), ``error`` with the traceback as one string,
and ``number_of_executions``. Every line is a whole object with its newline:
an empty line would fail their parser.

Code run with ``env_vars`` gets one line put before it (``env_prelude``) that
sets them in the kernel's process and restores them when the cell has run,
error or not (IPython's ``post_run_cell``), so they hold for that execution
only and it stays one execution (one execution count, as E2B's server does).
A context's first execution gets one more (``cwd_prelude``) when it was made
with a directory other than the home: the change to it.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

# MIME type -> the Result key E2B's SDKs read it from; anything else goes into ``extra``.
RESULT_KEYS = {
    "text/plain": "text",
    "text/html": "html",
    "text/markdown": "markdown",
    "image/svg+xml": "svg",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "application/pdf": "pdf",
    "text/latex": "latex",
    "application/json": "json",
    "application/javascript": "javascript",
    "e2b/data": "data",
    "e2b/chart": "chart",
}

KEEPALIVE = {"type": "keepalive"}
END = {"type": "end_of_execution"}


def encode(line: dict[str, Any]) -> bytes:
    """One line of the stream (never empty)."""
    return json.dumps(line, separators=(",", ":")).encode("utf-8") + b"\n"


def now_iso() -> str:
    """A timestamp as Jupyter's message headers write it (UTC, ISO 8601)."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def line_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The E2B line for one ``SessionKernels`` event (None: nothing to send)."""
    kind = event.get("type")
    if kind in ("stdout", "stderr"):
        return {"type": kind, "text": event.get("text", ""), "timestamp": now_iso()}
    if kind == "result":
        return result_line(event.get("data") or {}, event.get("kind") == "execute_result")
    if kind == "error":
        return error_line(event.get("ename", ""), event.get("evalue", ""), event.get("traceback") or [])
    return None


def result_line(data: dict[str, Any], is_main_result: bool) -> dict[str, Any]:
    """A rich result: one key per known MIME type (absent ones left out), the others in ``extra``."""
    rest = dict(data)
    line: dict[str, Any] = {"type": "result"}
    for mime, key in RESULT_KEYS.items():
        value = rest.pop(mime, None)
        if value is not None:
            line[key] = value
    text = line.get("text")
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        line["text"] = text[1:-1]  # a string's repr shows as the string, as E2B's server does
    line["is_main_result"] = is_main_result
    line["extra"] = rest
    return line


def error_line(name: str, value: str, traceback: list[str]) -> dict[str, Any]:
    """An error; all three fields are required by the Python SDK. The traceback's entries are joined
    by newlines, as Jupyter's front ends show them (each entry is a line or a block of lines)."""
    return {"type": "error", "name": name, "value": value, "traceback": "\n".join(traceback)}


# Sets ``new`` in the kernel's env and puts the old values back when the cell has run. Compact, as a
# traceback that shows the cell's first lines shows it too.
_ENV_ONCE = (
    "import os\n"
    "ip, old = get_ipython(), {k: os.environ.get(k) for k in new}\n"
    "os.environ.update(new)\n"
    "def restore(*_):\n"
    " ip.events.unregister('post_run_cell', restore)\n"
    " for k, v in old.items(): os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)\n"
    "ip.events.register('post_run_cell', restore)"
)


def env_prelude(env_vars: dict[str, str], code: str) -> str:
    """``code`` with ``env_vars`` set for it alone (restored after the cell, error or not)."""
    return _prepend("exec(%r, {'get_ipython': get_ipython, 'new': %r})" % (_ENV_ONCE, env_vars), code)


def cwd_prelude(cwd: str | None, code: str) -> str:
    """``code`` with the directory changed to ``cwd`` before it, for good (None: ``code`` as it is)."""
    return code if cwd is None else _prepend("__import__('os').chdir(%r)" % cwd, code)


def _prepend(prelude: str, code: str) -> str:
    """One line before ``code``, indented like the code's first line: IPython removes a cell's common
    leading indentation, so an unindented line would break indented code. It binds no name of the
    user's (``exec`` runs in a namespace of its own)."""
    first = next((line for line in code.split("\n") if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip())]
    return "%s%s\n%s" % (indent, prelude, code)
