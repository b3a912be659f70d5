"""Hostile input against a real ``sandkasten serve``: does the server stay responsive and bounded?

    .venv/bin/python -m bench.boundary [--quick] [--seconds 60] [--out FILE.json]

Figures, each next to an idle baseline measured in the same run (issue 15, "Done when"):
- ``/health`` p99 while a decompression bomb is uploaded: the reported one (a bzip2 tar
  whose header claims a 4 GiB member, then gigabytes of compressed zeros, a few KB on the
  wire), and a quieter one whose member stays under ``quota.max_archive_mb`` and is of a
  type tarfile skips, so the server decompresses about that much and writes nothing;
- the server's RSS after ``--seconds`` of a ``run_code`` output flood (256 KiB lines as
  fast as the kernel sends them), next to its RSS idle, with the reply's size.

Writes bench/results/<date>-boundary.json. It asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import bz2
import datetime
import http.client
import json
import os
import signal
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.report import print_rows, summary, write_results
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

ZEROS_BLOCK = 45_000_000  # one bzip2 stream of this many zeros is 50 bytes; streams may be concatenated
FLOOD = (
    "import time\nchunk = 'x' * (256 << 10)\nend = time.time() + %f\n"
    "while time.time() < end:\n    print(chunk, flush=True)\n"
)


def bzip2_bomb(member_type: bytes, claimed: int, zeros: int) -> bytes:
    """One tar member of ``member_type`` claiming ``claimed`` bytes, then ``zeros`` bytes of zeros, bzip2'd."""
    header = tarfile.TarInfo("zeros.bin")
    header.type, header.size = member_type, claimed
    block = bz2.compress(bytes(ZEROS_BLOCK))
    return bz2.compress(header.tobuf(tarfile.GNU_FORMAT)) + block * (zeros // ZEROS_BLOCK + 1)


def connection(served: Served, timeout: float = 600) -> tuple[http.client.HTTPConnection, str]:
    host, port = served.base_url.removeprefix("http://").split(":")
    return http.client.HTTPConnection(host, int(port), timeout=timeout), "/sandkasten/api/"


def call(served: Served, method: str, path: str, body: bytes = b"") -> tuple[int, bytes, float]:
    """Status, body and seconds of one request."""
    conn, prefix = connection(served)
    started = time.perf_counter()
    try:
        conn.request(method, prefix + path, body=body, headers=served.headers)
        reply = conn.getresponse()
        data = reply.read()
    finally:
        conn.close()
    return reply.status, data, time.perf_counter() - started


class HealthProbe:
    """GET /health every 20 ms from a thread of its own, each request on its own schedule (open loop): a
    server frozen for 10 s delays the 500 requests due meanwhile, not just the one in flight, so the p99
    shows the freeze."""

    INTERVAL_S = 0.02

    def __init__(self, served: Served) -> None:
        self.served = served
        self.samples_ms: list[float] = []
        self.errors = 0
        self._stop = threading.Event()
        self._answered = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=20)
        async with httpx.AsyncClient(
            base_url=self.served.url + "/", headers=self.served.headers, timeout=300, limits=limits
        ) as client:
            requests = []
            while not self._stop.is_set():
                requests.append(asyncio.ensure_future(self._one(client)))
                await asyncio.sleep(self.INTERVAL_S)
            await asyncio.gather(*requests)

    async def _one(self, client: httpx.AsyncClient) -> None:
        started = time.perf_counter()
        try:
            self.errors += (await client.get("health")).status_code != 200
        except httpx.HTTPError:
            self.errors += 1
        self.samples_ms.append((time.perf_counter() - started) * 1000)
        self._answered.set()

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        self._answered.wait(60)  # probing before what is measured starts
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.2)  # and a little after it
        self._stop.set()
        self._thread.join(600)

    @property
    def p99_ms(self) -> float:
        return summary(self.samples_ms)["p99_ms"]

    def result(self) -> dict[str, Any]:
        return {**summary(self.samples_ms), "max_ms": round(max(self.samples_ms), 3), "errors": self.errors}


def idle_health(served: Served, seconds: float) -> dict[str, Any]:
    with HealthProbe(served) as probe:
        time.sleep(seconds)
    return probe.result()


def bomb_upload(served: Served, session_id: str, bomb: bytes) -> dict[str, Any]:
    with HealthProbe(served) as probe:
        time.sleep(0.3)
        status, body, seconds = call(served, "PUT", "sessions/%s/archive/bomb" % session_id, bomb)
        time.sleep(0.3)
    try:
        answer = json.loads(body)
    except ValueError:
        answer = body[:200].decode("utf-8", "replace")
    return {
        "body_bytes": len(bomb),
        "status": status,
        "answer": answer,
        "upload_s": round(seconds, 3),
        "health": probe.result(),
    }


def flood(served: Served, session_id: str, seconds: float) -> dict[str, Any]:
    path = "sessions/%s/run_code" % session_id
    call(served, "POST", path, json.dumps({"code": "1"}).encode())  # the kernel is up, and its client
    time.sleep(2)
    idle_rss = served.rss_mb()
    status, body, took = call(served, "POST", path, json.dumps({"code": FLOOD % seconds}).encode())
    after_rss = served.rss_mb()
    result = json.loads(body) if status == 200 else {}
    return {
        "seconds": seconds,
        "status": status,
        "reply_bytes": len(body),
        "reply_s": round(took, 3),
        "output_bytes": result.get("output_bytes"),
        "truncated": result.get("truncated"),
        "kernel_restarted": result.get("kernel_restarted"),
        "rss_idle_mb": round(idle_rss, 1),
        "rss_after_mb": round(after_rss, 1),
    }


def measure(quick: bool, seconds: float) -> dict[str, Any]:
    served = launcher.start({"pool": {"images": {"python": 2}, "with_kernel": False}})

    def session() -> str:  # a fresh one for each figure: a figure's damage (on an old server) stays its own
        created = call(served, "POST", "sessions", json.dumps({"image": "python"}).encode())[1]
        session_id: str = json.loads(created)["id"]
        return session_id

    try:
        max_mb = 1024  # quota.max_archive_mb's default
        idle = idle_health(served, 2 if quick else 10)
        reported = bomb_upload(served, session(), bzip2_bomb(tarfile.REGTYPE, 4 << 30, (1 if quick else 4) << 30))
        quiet_mb = 64 if quick else max_mb - 8
        quiet = bomb_upload(served, session(), bzip2_bomb(b"Z", quiet_mb << 20, (quiet_mb + 64) << 20))
        flooded = flood(served, session(), 5 if quick else seconds)
    finally:
        try:
            served.stop()
        except OSError:  # a session could not be deleted (the Docker engine restarting?): end the server anyway
            served.process.send_signal(signal.SIGTERM)
            served.process.wait(60)
        served.remove_state()
    return {"health_idle": idle, "bomb_reported": reported, "bomb_quiet": quiet, "run_code_flood": flooded}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small bombs, a 5 s flood (CI checks it runs)")
    parser.add_argument("--seconds", type=float, default=60, help="length of the run_code flood (default 60)")
    parser.add_argument("--out", type=Path, help="where to write the JSON (default bench/results/)")
    options = parser.parse_args()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "quick": options.quick,
        **measure(options.quick, options.seconds),
    }
    idle_p99 = results["health_idle"]["p99_ms"]

    def during(name: str) -> str:
        bomb = results[name]
        health = bomb["health"]
        return "p99 %.1f ms (%.1fx idle), max %.1f ms, n=%d; %d B body answered %s in %.2f s" % (
            health["p99_ms"],
            health["p99_ms"] / idle_p99,
            health["max_ms"],
            health["n"],
            bomb["body_bytes"],
            bomb["status"],
            bomb["upload_s"],
        )

    flooded = results["run_code_flood"]
    print_rows(
        [
            ("/health idle", "p99 %.1f ms, n=%d" % (idle_p99, results["health_idle"]["n"])),
            ("/health during the reported bomb", during("bomb_reported")),
            ("/health during a quiet bomb", during("bomb_quiet")),
            ("server RSS idle", "%.1f MiB" % flooded["rss_idle_mb"]),
            (
                "server RSS after a %.0f s run_code flood" % flooded["seconds"],
                "%.1f MiB (+%.1f MiB, %.2fx idle); %s B printed, %d B reply in %.1f s, truncated %s"
                % (
                    flooded["rss_after_mb"],
                    flooded["rss_after_mb"] - flooded["rss_idle_mb"],
                    flooded["rss_after_mb"] / flooded["rss_idle_mb"],
                    flooded["output_bytes"],
                    flooded["reply_bytes"],
                    flooded["reply_s"],
                    flooded["truncated"],
                ),
            ),
        ]
    )
    write_results("boundary", results, options.quick, options.out)


if __name__ == "__main__":
    main()
