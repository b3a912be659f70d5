"""Figure 7: file transfer through the API, write and read of 1 KB, 1 MB and 100 MB, in MB/s.

``session.write`` (PUT, streamed into the sandbox) and ``session.read_bytes``
(GET) through the Python SDK, next to ``docker cp`` (docker-py's
``put_archive``/``get_archive``, what llm-sandbox uses for files) into a plain
container of the same image: Docker refuses ``docker cp`` into a sandbox, whose
root filesystem is read-only.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import Any

from bench.baselines import plain_docker
from bench.context import Run, timed, timed_sync
from bench.report import summary


def rate(size: int, samples: list[float]) -> dict[str, Any]:
    figures = summary(samples)
    return {**figures, "mb_per_s": round(size / 1e6 / (figures["median_ms"] / 1000), 3)}


def tar_of(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.uid = info.gid = 1000
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def one_size(run: Run, session: Any, container: Any, size: int) -> dict[str, Any]:
    data = os.urandom(size)
    name = "blob-%d" % size
    writes, reads, cp_in, cp_out = [], [], [], []
    for _ in range(run.sizes.file_repeats):
        ms, _ = await timed(lambda: session.write(name, data))
        writes.append(ms)
        ms, back = await timed(lambda: session.read_bytes(name))
        reads.append(ms)
        assert back == data
        ms, _ = timed_sync(lambda: container.put_archive("/tmp", tar_of(name, data)))
        cp_in.append(ms)
        ms, _ = timed_sync(lambda: b"".join(container.get_archive("/tmp/%s" % name)[0]))
        cp_out.append(ms)
    await session.exec("rm -f %s" % name)
    plain_docker.run(container, "rm -f /tmp/%s" % name)
    return {
        "bytes": size,
        "sandkasten_write": rate(size, writes),
        "sandkasten_read": rate(size, reads),
        "docker_cp_in": rate(size, cp_in),
        "docker_cp_out": rate(size, cp_out),
    }


async def measure(run: Run) -> dict[str, Any]:
    await run.pool_ready()
    session = await run.sdk.create_session()
    container = plain_docker.start(run.docker)
    try:
        return {"sizes": [await one_size(run, session, container, size) for size in run.sizes.file_sizes]}
    finally:
        plain_docker.remove(container)
        await session.destroy()
