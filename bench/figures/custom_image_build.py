"""Figure 13: an added image's build (``sandkasten images add``), the first time and repeated.

Two images, each added to a state directory of its own and removed afterwards:

- from a Dockerfile: ``FROM sandkasten/bootstrap:bookworm`` (debootstrap's minbase, no
  python3) and ``apt-get install jq`` from Debian's mirror; its runner layer then installs
  python3 and bash from the mirror too. The slow path: two builds, two ``apt-get``.
- ``--from`` an image that has python3 already (``sandkasten/layers:base``): the runner
  layer alone.

Neither first build finds anything in Docker's layer cache: the Dockerfile's first step,
and the label of the ``--from`` image (a copy of layers:base made for the run), differ
in every run. The repeated build is ``sandkasten images build NAME`` with nothing
changed, which compares the source-hash labels and builds nothing: what ``sandkasten
serve`` pays for each added image at every start. There is no baseline: ``docker build``
of the same Dockerfile is the first build's first half.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
import docker.errors

from bench.context import Sizes
from bench.report import summary, time_sync
from sandkasten_kernel.engine import CustomImages, EngineError, open_state_store
from sandkasten_kernel.engine.images import BOOTSTRAP_TAG

DOCKERFILE = """\
FROM %s
RUN echo %s > /etc/sandkasten-bench-run
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
"""
FROM_IMAGE = "sandkasten/layers:base"


def _fresh_parent(client: docker.DockerClient, run: str) -> str:
    """A copy of layers:base with a label of this run: another image id, so nothing of it is cached."""
    reference = "sandkasten-bench/custom-parent:%s" % run
    dockerfile = io.BytesIO(('FROM %s\nLABEL sandkasten.bench-run="%s"\n' % (FROM_IMAGE, run)).encode())
    client.images.build(fileobj=dockerfile, tag=reference, rm=True, pull=False)
    return reference


def _measure(images: CustomImages, name: str, repeats: int, **source: str) -> dict[str, Any]:
    started = time.monotonic()
    outcomes = images.add(name, **source)
    first_s = time.monotonic() - started
    repeated = time_sync(lambda: images.build([name]), repeats)
    row = next(row for row in images.listing() if row["name"] == name)
    return {
        "first_s": round(first_s, 1),
        "steps_s": {outcome.tag: round(outcome.seconds, 1) for outcome in outcomes},
        "repeated": summary(repeated),
        "size_mb": round(row["size_bytes"] / 1e6),
        "state": row["state"],
    }


def build(client: docker.DockerClient, sizes: Sizes) -> dict[str, Any]:
    run = "%d-%d" % (os.getpid(), time.time())
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sk-bench-images-") as base:
        folder = os.path.join(base, "context")  # the build context: the store must not be in it
        os.mkdir(folder)
        (Path(folder) / "Dockerfile").write_text(DOCKERFILE % (BOOTSTRAP_TAG, run))
        store = open_state_store(os.path.join(base, "state"))
        images = CustomImages(store, client, progress=lambda line: None)
        parent = _fresh_parent(client, run)
        names = {"dockerfile": "bench-dockerfile-%s" % run, "from": "bench-from-%s" % run}
        try:
            figures["dockerfile"] = _measure(
                images, names["dockerfile"], sizes.image_rebuilds, dockerfile=os.path.join(folder, "Dockerfile")
            )
            figures["from"] = _measure(images, names["from"], sizes.image_rebuilds, from_image=parent)
        finally:
            for name in names.values():
                with contextlib.suppress(EngineError):  # not added, if its build failed before
                    images.remove(name)
            with contextlib.suppress(docker.errors.APIError):
                client.images.remove(parent)
            store.close()
    figures["dockerfile"]["made_from"] = "%s + apt-get install jq (python3 and bash installed by the runner layer)" % (
        BOOTSTRAP_TAG
    )
    figures["from"]["made_from"] = "%s (python3 there: the runner layer only)" % FROM_IMAGE
    return figures


async def measure(client: docker.DockerClient, sizes: Sizes) -> dict[str, Any]:
    return await asyncio.to_thread(build, client, sizes)
