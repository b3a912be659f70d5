"""The thin layer over docker-py: connect, start a sandbox container, remove it.

Calls here block; async callers run them in an executor (DESIGN.md decision 10).
Docker's exceptions become the engine's own, with messages a user can act on.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from .errors import DockerUnavailable, EngineError, ImageError
from .sandbox_spec import SandboxSpec, container_options, prepare_run_dir


def connect(timeout: float = 60.0) -> docker.DockerClient:
    """A client for the local engine (DOCKER_HOST honoured), API version negotiated."""
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerUnavailable(
            "the Docker engine does not answer (%s). Start it (dockerd) or set DOCKER_HOST." % exc
        ) from None
    return client


def start_sandbox(client: docker.DockerClient, spec: SandboxSpec) -> Container:
    """Create the run directory and start a hardened container for ``spec``."""
    prepare_run_dir(spec.run_dir)
    options: dict[str, Any] = container_options(spec)
    try:
        container: Container = client.containers.run(**options)
    except docker.errors.ImageNotFound:
        raise ImageError("image %s is missing: build it with `sandkasten images build`" % spec.image) from None
    except docker.errors.APIError as exc:
        raise EngineError(
            "docker could not start a sandbox from %s: %s" % (spec.image, exc.explanation or exc)
        ) from None
    return container


def remove_sandbox(container: Container) -> None:
    """Stop and remove the container; a container already gone is not an error."""
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise EngineError("docker could not remove %s: %s" % (container.short_id, exc.explanation or exc)) from None
