"""``nbgrader autograde`` on the sandkasten kernel: one warm sandbox per submission, no network, limits, timeouts.

A real course directory (nbgrader's own ``generate_assignment``), three
submissions (right, wrong, hostile) and the real ``nbgrader autograde`` in a
subprocess, its kernels from a ``sandkasten serve`` pool, as
docs/autograding.md configures it. The batch time next to nbgrader's default
local kernel is printed (``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandkasten_server.launcher import Served
from tests.classroom.nbgrader_course import (
    CORRECT,
    FORK_BOMB,
    WRONG,
    Course,
    fingerprints,
    grading_times,
    hostile_answer,
    new_course,
)
from tests.conftest import sandkasten_cli, serving

pytestmark = pytest.mark.docker

TIMEOUT_S = 10  # c.Execute.timeout: per cell
# The rest of docs/autograding.md's nbgrader_config.py: a kernel deaf to the interrupt costs its cells'
# timeouts, rather than nbgrader giving up on the submission; and a kernel's end is its sandbox's removal
SANDBOXED = ["c.Execute.raise_on_iopub_timeout = False", "c.Execute.shutdown_kernel = 'immediate'"]
MEMORY_MB, PIDS = 384, 128  # the grading server's defaults: every submission's sandbox gets these
GRADER_CONFIG = {
    "pool": {"images": {"python": 3}},
    "defaults": {"memory_mb": MEMORY_MB, "pids": PIDS, "cpus": 1.0},
    "session": {"ttl_s": 600},
}


@pytest.fixture(scope="module")
def grading_server(docker_client: Any) -> Iterator[Served]:
    with serving(docker_client, GRADER_CONFIG) as server:
        yield server


@pytest.fixture(scope="module")
def grader_env(grading_server: Served, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the grader's process needs: the server's sandkasten.yaml, and the kernelspecs
    ``sandkasten kernelspec install`` writes."""
    prefix = tmp_path_factory.mktemp("prefix")
    installed = sandkasten_cli(grading_server.config_path, "kernelspec", "install", "--prefix", str(prefix))
    assert installed.returncode == 0, installed.stderr
    return {"SANDKASTEN_CONFIG": grading_server.config_path, "JUPYTER_PATH": str(prefix / "share" / "jupyter")}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Course:
    """The course with ps1 generated; each test grades a copy."""
    return new_course(tmp_path_factory.mktemp("generated") / "course")


class Listener:
    """A TCP listener on every address of the host, counting the connections it is offered."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("0.0.0.0", 0))
        self.port: int = self.socket.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.accepted += 1
            connection.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener()
    yield listening
    listening.socket.close()


def host_addresses() -> list[str]:
    """The host's loopback address, and its address on Docker's bridge (where containers with network reach it)."""
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "docker0"], capture_output=True, text=True).stdout
    return ["127.0.0.1", *(line.split()[3].split("/")[0] for line in shown.splitlines())]


def pool_counts(server: Served) -> tuple[int, int]:
    """Claims and misses of the python pool so far."""
    python = server.call("GET", "pool")["images"]["sandkasten/runtime:python"]
    return python["claims"], python["misses"]


def hostile_course(
    generated: Course, root: Path, hostile: str, addresses: list[str], port: int, *added: str
) -> tuple[Course, dict[str, str]]:
    """A copy of the course with alice's right answer, oscar's wrong one, and ``hostile``'s attack on both,
    the instructor's source, the gradebook and the grader's notes (``hostile_answer``, then ``added`` cells);
    and those targets by name."""
    course = generated.copy(root)
    course.submit("alice", CORRECT)
    course.submit("oscar", WRONG)
    targets = {
        "alice": str(course.submitted("alice")),
        "oscar": str(course.submitted("oscar")),
        "source": str(course.source),
        "gradebook": str(course.gradebook),
        "grader-notes": str(course.root / "grader-notes.txt"),
    }
    course.submit(hostile, hostile_answer(targets, addresses, port), *added)
    return course, targets


def report_of(answer: str) -> dict[str, Any]:
    """What the hostile answer printed as its report."""
    (line,) = [line for line in answer.splitlines() if line.startswith("REPORT ")]
    report: dict[str, Any] = json.loads(line.removeprefix("REPORT "))
    return report


def test_three_submissions_each_in_a_sandbox_of_its_own(
    grading_server: Served, grader_env: dict[str, str], generated: Course, tmp_path: Path, listener: Listener
) -> None:
    addresses = host_addresses()
    course, targets = hostile_course(generated, tmp_path / "course", "mallory", addresses, listener.port, FORK_BOMB)
    course.configure("sandkasten-python", TIMEOUT_S, *SANDBOXED)
    kept = {folder: fingerprints(course.root / folder) for folder in ("submitted", "source", "release")}
    claims, misses = pool_counts(grading_server)
    grading_server.wait_warm(count=3)

    elapsed, log = course.nbgrader("autograde", "ps1", env=grader_env)

    assert "no Sandkasten server answers" not in log
    assert course.scores("alice") == {"test_mean_ints": 1, "test_mean_halves": 2}
    assert course.scores("oscar") == {"test_mean_ints": 1, "test_mean_halves": 0}
    assert course.scores("mallory") == {"test_mean_ints": 0, "test_mean_halves": 0}
    answer, *tests, bomb = course.outputs("mallory")
    assert tests == ["NameError", "NameError"], "mallory's mean() is never defined: the loop was interrupted"
    assert "CellTimeoutError" in answer and "KeyboardInterrupt" in answer, answer
    report = report_of(answer)
    tried = ["read %s" % target for target in [*targets, "../../alice"]] + ["overwrite oscar", "overwrite ../../oscar"]
    assert {name: outcome for name, outcome in report.items() if name.startswith(("read", "overwrite"))} == {
        name: ["refused", "FileNotFoundError"] for name in tried
    }
    assert report["walk"] == "complete" and report["found"], "the walk was cut short or found nothing: %s" % report
    assert all(path.startswith("/usr/lib/python3/dist-packages/") for path in report["found"]), (
        "only the image's own notebooks (matplotlib's) are in a submission's sandbox: %s" % report["found"]
    )
    # A sandbox of its own: alice's notes (graded just before, in the same batch) are not there
    assert (report["cwd"], report["here"]) == ("/workspace", [])
    assert report["interfaces"] == ["lo"]
    assert report["connect 127.0.0.1"] == ["refused", "ConnectionRefusedError"]
    assert all(report["connect %s" % address][0] == "refused" for address in addresses), report
    assert listener.accepted == 0
    assert (report["memory_limit"], report["pids_limit"]) == (str(MEMORY_MB << 20), str(PIDS))
    forked, *_ = bomb.splitlines()
    assert forked.startswith("FORKED ") and forked.endswith(" BlockingIOError"), bomb
    assert 0 < int(forked.split()[1]) < PIDS, "the fork bomb filled the sandbox up to its pids limit, no further"
    assert bomb.endswith("CellTimeoutError"), "then it hung, deaf to the interrupt, until its timeout"
    # Nobody's files changed, and every sandbox has gone
    assert {folder: fingerprints(course.root / folder) for folder in kept} == kept
    assert grading_server.call("GET", "sessions")["sessions"] == []
    # One warm sandbox per submission, each from the pool
    assert pool_counts(grading_server) == (claims + 3, misses)
    # Two of its cells timed out; nothing more held the batch up
    times = grading_times(log)
    assert times["mallory"] < 2 * TIMEOUT_S + 30, times
    assert elapsed < 120, "the hostile submission stalled the batch: %.1f s" % elapsed
    print(
        "\nnbgrader autograde, 3 submissions on sandkasten-python: %.1f s in all; per submission %s "
        "(the hostile one's walk of the sandbox's filesystem: %.1f s)"
        % (elapsed, ", ".join("%s %.1f s" % item for item in times.items()), report["walk_s"])
    )


def test_the_same_batch_on_the_local_kernel_leaks_and_takes_as_long(
    grading_server: Served, grader_env: dict[str, str], generated: Course, tmp_path: Path, listener: Listener
) -> None:
    """Right, wrong and hostile (without its fork bomb, graded last) on nbgrader's default local kernel, where
    the attack succeeds, then on sandboxes, where it does not: the batch time of each."""
    times, graded = {}, {}
    for kernel in ("python3", "sandkasten-python"):
        course, _ = hostile_course(generated, tmp_path / kernel, "trudy", ["127.0.0.1"], listener.port)
        course.configure(kernel, TIMEOUT_S, *(SANDBOXED if kernel == "sandkasten-python" else []))
        before = fingerprints(course.root / "submitted")
        accepted = listener.accepted
        grading_server.wait_warm(count=3)
        times[kernel], log = course.nbgrader("autograde", "ps1", env=grader_env)
        graded[kernel] = grading_times(log)
        assert course.scores("alice") == {"test_mean_ints": 1, "test_mean_halves": 2}
        assert course.scores("oscar") == {"test_mean_ints": 1, "test_mean_halves": 0}
        assert course.scores("trudy") == {"test_mean_ints": 0, "test_mean_halves": 0}
        report = report_of(course.outputs("trudy")[0])
        reached = {name for name, outcome in report.items() if name.startswith(("read", "overwrite", "connect"))}
        reached = {name for name in reached if report[name][0] == "done"}
        changed = {name for name, digest in fingerprints(course.root / "submitted").items() if before[name] != digest}
        if kernel == "python3":  # the attack is real: everything it tried, it did
            assert {"read alice", "read source", "read gradebook", "read grader-notes", "overwrite oscar"} <= reached
            assert "connect 127.0.0.1" in reached and listener.accepted > accepted
            assert changed == {"oscar/ps1/problem1.ipynb"}
        else:
            assert (reached, changed, listener.accepted) == (set(), set(), accepted)
    for kernel in times:
        print(
            "\nnbgrader autograde, right + wrong + hostile without fork bomb on %s: %.1f s in all; per submission %s"
            % (kernel, times[kernel], ", ".join("%s %.1f s" % item for item in graded[kernel].items()))
        )
