"""The do-it-yourself baseline: ``docker run`` a container, then ``docker exec`` into it, via docker-py."""

from __future__ import annotations

from typing import Any

import docker

from sandkasten_kernel.engine.images import IMAGES

IMAGE = IMAGES["python"].layers_tag  # the same Debian python image the other baselines use


def start(client: docker.DockerClient) -> Any:
    return client.containers.run(IMAGE, ["sleep", "infinity"], detach=True, labels={"sandkasten-bench": "plain"})


def run(container: Any, command: str) -> bytes:
    exit_code, output = container.exec_run(["sh", "-c", command])
    if exit_code != 0:
        raise RuntimeError("docker exec %r exited %s" % (command, exit_code))
    return bytes(output)


def remove(container: Any) -> None:
    container.remove(force=True)
