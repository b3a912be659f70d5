"""What rebuilds and failed builds of an added image leave in Docker, and removing it.

A rebuild moves the tag to a new image and leaves the old one untagged (a GB or so for
an image with its packages, at every change of the runner). A failed build keeps the
images of the steps that worked, built on the image it started from, which then cannot
be removed while they exist. Only untagged images that nothing runs go, and only those
of an added image's own builds: a failure to remove one is no error (a container may
still use it; Docker's own ``docker image prune`` gets it later).
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import docker.errors


def _is_dangling(image: Any) -> bool:
    return not image.tags


def _untagged(tags: list[str] | None) -> bool:
    return not [tag for tag in tags or [] if tag != "<none>:<none>"]


def remove_superseded(client: docker.DockerClient, image_id: str | None) -> None:
    """Remove ``image_id`` (what a tag named before a rebuild) if no tag names it now."""
    if image_id is None:
        return
    with contextlib.suppress(docker.errors.APIError):
        if _is_dangling(client.images.get(image_id)):
            client.images.remove(image_id)


def remove_dangling_descendants(client: docker.DockerClient, image_id: str) -> None:
    """Remove the untagged images built on ``image_id`` (the steps of failed builds), the last ones first.
    Docker keeps those that a tagged image is built on (they have children), and those a container uses."""
    with contextlib.suppress(docker.errors.APIError):
        children: dict[str, list[str]] = {}
        for image in client.api.images(all=True):
            if _untagged(image.get("RepoTags")):
                children.setdefault(image.get("ParentId") or "", []).append(image["Id"])
        order: list[str] = []
        stack = list(children.get(image_id, []))
        while stack:
            current = stack.pop()
            order.append(current)
            stack.extend(children.get(current, []))
        for descendant in reversed(order):
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(descendant)
