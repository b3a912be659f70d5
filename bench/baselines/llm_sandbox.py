"""llm-sandbox's Docker backend on a local image, configured for its fastest path.

``skip_environment_setup`` skips what ``open()`` otherwise does for Python (a venv
and ``pip install --upgrade pip``, which needs PyPI that containers here cannot
reach); the image exists locally, so nothing is pulled or built. That is the
quickest start llm-sandbox offers, which keeps the comparison generous to it.
"""

from __future__ import annotations

import shlex
from typing import Any

import docker
from llm_sandbox import SandboxBackend, SandboxSession

from sandkasten_kernel.engine.images import IMAGES

IMAGE = IMAGES["python"].layers_tag  # Debian python3, as in Sandkasten's python image, without the runner


def open_session(client: docker.DockerClient) -> Any:
    session = SandboxSession(
        backend=SandboxBackend.DOCKER,
        client=client,
        lang="python",
        image=IMAGE,
        keep_template=True,  # never remove the image afterwards
        skip_environment_setup=True,
    )
    session.open()
    return session


def run(session: Any, command: str) -> str:
    """One shell command through ``execute_command`` (a ``docker exec``); its stdout."""
    result = session.execute_command(shlex.join(["sh", "-c", command]))
    if result.exit_code != 0:
        raise RuntimeError("llm-sandbox: %r exited %s: %s" % (command, result.exit_code, result.stderr))
    return str(result.stdout)


def close(session: Any) -> None:
    """Remove the container, then let the session forget it.

    ``close()`` alone runs ``docker stop``, which waits its full 10 s grace period:
    the container's PID 1 is bash, which ignores SIGTERM. Not measured either way.
    """
    session.container.remove(force=True)
    session.close()
