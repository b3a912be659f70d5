"""Kernels of agents' own processes come from a running server's warm pool, and only their user reaches them."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.baselines.gateway import bridge_gateway
from sandkasten_server.launcher import Served
from tests.conftest import serving

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
AGENT = str(Path(__file__).with_name("agent.py"))
AGENT_UID, OTHER_UID = 65534, 65533  # nobody, and a user with no business with its kernel
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def pool_server(docker_client: Any) -> Iterator[Served]:
    """A server with a warm python sandbox (kernel up), listening on every address."""
    with serving(docker_client, {"pool": {"images": {"python": 1}}}, host="0.0.0.0") as server:
        yield server


class Agent:
    """tests/provisioner/agent.py in its own process: its steps as JSON lines.

    With ``uid``, the agent runs as that user from ``home``: a directory of its own
    with a copy of the server's sandkasten.yaml and of the kernelspecs, since
    it may enter neither the server's temp directory nor the test's.
    """

    def __init__(self, server: Served, kernelspecs: Path, uid: int | None = None, home: Path | None = None) -> None:
        env = {"SANDKASTEN_CONFIG": server.config_path, "JUPYTER_PATH": str(kernelspecs), "PATH": os.environ["PATH"]}
        python = sys.executable
        if uid is not None:
            assert home is not None
            # The venv's interpreter lives under /root, which another user cannot enter: the
            # system's Python of the same version runs the same packages from the venv.
            python = SYSTEM_PYTHON
            paths = [sysconfig.get_paths()["purelib"], str(ROOT), str(ROOT / "runner"), str(ROOT / "server_extension")]
            if not (home / "jupyter").exists():
                shutil.copytree(kernelspecs, home / "jupyter")
                shutil.copy(server.config_path, home / "sandkasten.yaml")
                os.chmod(home / "sandkasten.yaml", 0o644)
                (home / "runtime").mkdir()
                os.chown(home / "runtime", uid, uid)
            env.update(
                SANDKASTEN_CONFIG=str(home / "sandkasten.yaml"),
                JUPYTER_PATH=str(home / "jupyter"),
                PYTHONPATH=":".join(paths),
                HOME=str(home / "runtime"),
                JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            )
        self.process = subprocess.Popen(
            [python, AGENT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd="/",
            user=uid,
            group=uid,
            extra_groups=[] if uid is not None else None,
        )

    def step(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(30)
            raise AssertionError("the agent ended: %s" % self.stderr())
        fields: dict[str, Any] = json.loads(line)
        return fields

    def finish(self) -> str:
        """Let the agent shut its kernel down and exit; its stderr."""
        out, err = self.process.communicate("done\n", timeout=120)
        assert self.process.returncode == 0, err
        assert json.loads(out.splitlines()[-1]) == {"step": "shut down"}
        return err

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()


def run_steps(agent: Agent) -> dict[str, dict[str, Any]]:
    return {step["step"]: step for step in (agent.step() for _ in range(4))}


def test_an_agent_process_gets_a_warm_kernel_that_it_owns(pool_server: Served, kernelspecs: Path) -> None:
    pool_server.wait_warm()
    agent = Agent(pool_server, kernelspecs)
    steps = run_steps(agent)
    session = pool_server.call("GET", "sessions/" + steps["started"]["session"])
    assert session["warm"] is True, "the kernel's sandbox did not come from the server's pool"
    assert session["kernel_id"] == "client:%s" % steps["started"]["kernel_id"]
    assert steps["executed"] == {"step": "executed", "status": "ok", "ename": None, "out": "42\n"}
    assert steps["interrupted"]["ename"] == "KeyboardInterrupt"
    # A restart is a new kernel in the same sandbox: files stay, variables go.
    assert steps["restarted"]["out"] == "x False\n"
    # While the agent holds its kernel, the server's own kernel manager keeps off it.
    refused = post(pool_server, "sessions/%s/run_code" % session["id"], {"code": "1"})
    assert (refused.code, json.loads(refused.read())["error"]) == (409, "kernel_in_use")
    stderr = agent.finish()
    assert "no Sandkasten server answers" not in stderr
    with pytest.raises(urllib.error.HTTPError) as gone:
        pool_server.call("GET", "sessions/" + session["id"])
    assert gone.value.code == 404, "shutting the kernel down did not release its sandbox"


def test_an_agent_that_is_not_root_alone_reaches_its_kernel(pool_server: Served, kernelspecs: Path) -> None:
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    assert version == str(sys.version_info[:2]), "the test runs the venv's packages on %s %s" % (SYSTEM_PYTHON, version)
    home = Path(tempfile.mkdtemp(prefix="sk-agent-", dir="/tmp"))
    os.chmod(home, 0o755)
    base = Path(pool_server.config_path).parent
    try:
        os.chmod(base, 0o700)  # as tempfile makes it: nobody but root may pass
        closed = Agent(pool_server, kernelspecs, uid=AGENT_UID, home=home)
        closed.process.stdin.close()  # type: ignore[union-attr]
        assert closed.process.wait(120) != 0
        assert "user %d cannot enter %s" % (AGENT_UID, base) in closed.stderr()

        os.chmod(base, 0o711)
        agent = Agent(pool_server, kernelspecs, uid=AGENT_UID, home=home)
        steps = run_steps(agent)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert steps["started"]["uid"] == AGENT_UID
    assert steps["executed"]["out"] == "42\n" and steps["restarted"]["out"] == "x False\n"
    # Another local user can neither connect to the kernel's sockets nor list the state directory.
    shell = "%s-%d" % (steps["started"]["ip"], steps["started"]["shell_port"])
    probe = (
        "import os, socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n    s.connect(sys.argv[1]); print('connected')\n"
        "except PermissionError: print('refused')\n"
        "try:\n    os.listdir(sys.argv[2]); print('listed')\n"
        "except PermissionError: print('refused')\n"
    )
    state = os.path.join(base, "state")
    for uid, expected in ((OTHER_UID, ["refused", "refused"]), (AGENT_UID, ["connected", "refused"])):
        seen = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe, shell, state],
            capture_output=True,
            text=True,
            user=uid,
            group=uid,
            extra_groups=[],
        )
        assert seen.stdout.split() == expected, (uid, seen.stderr)
    agent.finish()


def test_kernel_sockets_are_not_handed_to_another_machine(pool_server: Served, docker_client: Any) -> None:
    session = pool_server.call("POST", "sessions")
    try:
        # The same server, asked on the host's bridge address: to the server, a peer on another machine.
        elsewhere = pool_server.url.replace("127.0.0.1", bridge_gateway(docker_client))
        refused = post(pool_server, "sessions/%s/kernel" % session["id"], {}, base=elsewhere)
        assert (refused.code, json.loads(refused.read())["error"]) == (409, "not_local")
        assert post(pool_server, "sessions/%s/kernel" % session["id"], {}).code == 201  # on loopback it is local
    finally:
        pool_server.call("DELETE", "sessions/" + session["id"])


def post(server: Served, path: str, body: dict[str, Any], base: str | None = None) -> Any:
    """POST ``body`` as JSON; the response, or the HTTP error (both have .code and .read())."""
    request = urllib.request.Request(
        "%s/%s" % (base or server.url, path),
        method="POST",
        data=json.dumps(body).encode(),
        headers={**server.headers, "Content-Type": "application/json"},
    )
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as exc:
        return exc


def test_a_sandbox_cannot_turn_the_grant_onto_a_host_file(pool_server: Served) -> None:
    """Code in the sandbox tries to swap its kernel's sockets for links to the server's store, then a user
    who is not root claims the kernel: the ACL entry lands on the real sockets, never on the store."""
    session = pool_server.call("POST", "sessions")
    store = os.path.join(pool_server.state_dir, "sandkasten.db")
    base = Path(pool_server.config_path).parent
    os.chmod(base, 0o711)
    try:
        assert post(pool_server, "sessions/%s/kernel" % session["id"], {}).code == 201  # sockets bound, pinned
        swap = "cd /run/sandkasten && for n in 1 2 3 4 5; do ln -sfn %s .l$n && mv -fT .l$n kernel-$n; done; echo done"
        exec_request = post(pool_server, "sessions/%s/exec" % session["id"], {"command": swap % store})
        assert json.loads(exec_request.read())["output"].count("Operation not permitted") == 5
        claim = (
            "import json, sys, urllib.request\n"
            "headers = json.loads(sys.argv[2])\n"
            "request = urllib.request.Request(sys.argv[1], method='POST', data=b'{}', headers=headers)\n"
            "print(urllib.request.urlopen(request, timeout=60).status)\n"
        )
        headers = json.dumps({**pool_server.headers, "Content-Type": "application/json"})
        url = "%s/sessions/%s/kernel" % (pool_server.url, session["id"])
        claimed = subprocess.run(
            [SYSTEM_PYTHON, "-c", claim, url, headers], capture_output=True, text=True, user=AGENT_UID, group=AGENT_UID
        )
        assert claimed.stdout.strip() == "201", claimed.stderr
        with pytest.raises(OSError):  # ENODATA: no ACL on the store
            os.getxattr(store, "system.posix_acl_access")
        assert os.stat(store).st_mode & 0o077 == 0
        run_dir = os.path.join(pool_server.state_dir, "sandboxes", session["id"])
        for n in range(1, 6):
            socket_entry = os.path.join(run_dir, "kernel-%d" % n)
            assert stat.S_ISSOCK(os.lstat(socket_entry).st_mode)
            assert os.getxattr(socket_entry, "system.posix_acl_access", follow_symlinks=False)
    finally:
        pool_server.call("DELETE", "sessions/" + session["id"])
