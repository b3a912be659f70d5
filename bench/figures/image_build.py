"""Figure 9: ``sandkasten images build`` when every image is current, and (``--cold-build``) from nothing.

When current, the builder only compares each image's source hash label with its
sources: what ``sandkasten serve`` pays at every start. From nothing, every
Sandkasten image and the debootstrap base are removed first, then all are built
(debootstrap from the Debian mirror included): minutes, and it needs the mirror,
so only on request. There is no baseline: no other tool here builds these images.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import docker
import docker.errors

from bench.context import Sizes, timed_sync
from bench.report import summary
from sandkasten_kernel.engine.images import BOOTSTRAP_TAG, IMAGES, ImageBuilder


def from_nothing(client: docker.DockerClient, builder: ImageBuilder) -> dict[str, Any]:
    tags = [tag for spec in reversed(IMAGES.values()) for tag in (spec.tag, spec.layers_tag)]
    for tag in [*tags, BOOTSTRAP_TAG]:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)
    ms, outcomes = timed_sync(builder.build)
    return {"seconds": round(ms / 1000, 1), "built": [o.tag for o in outcomes if o.built]}


def build(client: docker.DockerClient, sizes: Sizes, cold: bool) -> dict[str, Any]:
    builder = ImageBuilder(client, progress=lambda line: None)
    figures: dict[str, Any] = {"from_nothing": from_nothing(client, builder)} if cold else {}
    samples, built = [], set()
    for _ in range(sizes.image_rebuilds):
        ms, outcomes = timed_sync(builder.build)
        samples.append(ms)
        built |= {o.tag for o in outcomes if o.built}
    figures["current"] = summary(samples)
    figures["current_built"] = sorted(built)  # nothing, unless the sources changed while it ran
    return figures


async def measure(client: docker.DockerClient, sizes: Sizes, cold: bool) -> dict[str, Any]:
    return await asyncio.to_thread(build, client, sizes, cold)
