"""Figure 12: egress. What the filtering proxy adds to an allowed request, next to a direct one.

A server of its own (the run's shared server has no network): ``security.allow_network``
and no ``security.egress``, so a session with ``network={"allow": [deb.debian.org]}``
goes out through the proxy (squid on the host; HTTP_PROXY and HTTPS_PROXY set
inside) and one with ``network=True`` goes out directly. In each, one python3 script
makes sequential ``urllib.request.urlopen`` GETs of http://deb.debian.org/debian/README
(a fresh connection each: urllib sends ``Connection: close``), each timed with
``time.perf_counter`` from the call to the last byte of the body, after one
untimed request; the modes take turns, in rounds, so drift on the machine falls
on each alike.

The direct request by name also pays a DNS lookup inside the sandbox, which the
proxy mode does not (squid resolves, and caches the answer). So the direct mode is
timed twice: by name, and by the address resolved once beforehand
(``socket.gethostbyname``; HTTP then asks ``http://ADDRESS/...`` with a ``Host``
header, HTTPS keeps the name, for SNI and the certificate check, with that one
answer for it). The fair comparison, and the target's, is the proxy against the
direct request by address. HTTPS the same (a CONNECT tunnel through the proxy),
verified against the host's CA bundle written into each sandbox: on this kind of
machine every name resolves to an intercepting gateway whose certificate only that
bundle holds; without the file, no HTTPS row. squid caches no responses here,
but may keep its own connection to the server open between requests
(server_persistent_connections, on by default), so over HTTP a fresh connection
from the sandbox may end at squid; an HTTPS tunnel is the sandbox's own
connection end to end.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.context import Sizes
from bench.report import summary
from sandkasten import SandboxClient, Session
from sandkasten_server import launcher
from sandkasten_server.launcher import Served

HOST = "deb.debian.org"
PATH = "/debian/README"
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
ROUNDS = 4  # each mode's requests, in this many turns
SERVER_CONFIG: dict[str, Any] = {"pool": {"enabled": False}, "security": {"allow_network": True}}
MODES = ("proxy", "direct_name", "direct_address")

# Run inside the sandbox: `python3 get.py SCHEME MODE N [CAFILE]`; prints the N timings (ms) as JSON.
SCRIPT = r"""
import json, socket, ssl, sys, time, urllib.request
scheme, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, path = %r, %r
assert ("http" in urllib.request.getproxies()) == (mode == "proxy"), urllib.request.getproxies()
context = ssl.create_default_context(cafile=sys.argv[4]) if scheme == "https" else None
url, headers = "%%s://%%s%%s" %% (scheme, host, path), {}
if mode == "direct_address":
    address = socket.gethostbyname(host)
    if scheme == "http":
        url, headers = "http://%%s%%s" %% (address, path), {"Host": host}
    else:
        lookup = socket.getaddrinfo
        socket.getaddrinfo = lambda name, *rest, **kw: lookup(address if name == host else name, *rest, **kw)
def get():
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=15, context=context) as reply:
        size = len(reply.read())
    ms = (time.perf_counter() - started) * 1000
    assert reply.status == 200 and size > 100, (reply.status, size)
    return ms
get()
print(json.dumps([get() for _ in range(n)]))
""" % (HOST, PATH)


def timing(samples_ms: list[float]) -> dict[str, float]:
    """``summary`` with the p90 too."""
    ordered = sorted(samples_ms)
    return {**summary(ordered), "p90_ms": round(ordered[round(0.9 * (len(ordered) - 1))], 3)}


def added(proxy: dict[str, float], direct: dict[str, float]) -> dict[str, float]:
    """What the proxy adds to the direct median, in ms and as a ratio."""
    return {
        "ms": round(proxy["median_ms"] - direct["median_ms"], 2),
        "ratio": round(proxy["median_ms"] / direct["median_ms"], 2),
    }


async def _requests(session: Session, scheme: str, mode: str, n: int) -> list[float]:
    command = "python3 /workspace/get.py %s %s %d /workspace/host-ca.crt" % (scheme, mode, n)
    result = await session.exec(command, timeout_ms=300_000)
    if result.exit_code != 0:
        raise RuntimeError("%s %s requests failed: %s" % (scheme, mode, result.output[-2000:]))
    samples: list[float] = json.loads(result.output.strip().splitlines()[-1])
    return samples


async def _scheme(sessions: dict[str, Session], scheme: str, requests: int) -> dict[str, Any]:
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    rounds = min(ROUNDS, requests)
    for turn in range(rounds):
        for mode in MODES:
            share = requests // rounds + (1 if turn < requests % rounds else 0)
            samples[mode] += await _requests(sessions[mode], scheme, mode, share)
    figures: dict[str, Any] = {mode: timing(samples[mode]) for mode in MODES}
    figures["added"] = {
        "vs_direct_address": added(figures["proxy"], figures["direct_address"]),
        "vs_direct_name": added(figures["proxy"], figures["direct_name"]),
    }
    return figures


async def _measure(served: Served, sizes: Sizes) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "url": "http://%s%s" % (HOST, PATH),
        "requests": sizes.egress_requests,
        "rounds": min(ROUNDS, sizes.egress_requests),
        "server_config": SERVER_CONFIG,
    }
    async with SandboxClient(served.base_url, served.api_key, timeout=600) as sdk:
        proxied = await sdk.create_session(network={"allow": [HOST]})
        direct = await sdk.create_session(network=True)
        try:
            for session in (proxied, direct):
                await session.write("get.py", SCRIPT)
                if os.path.exists(HOST_CA_BUNDLE):
                    await session.write("host-ca.crt", Path(HOST_CA_BUNDLE).read_bytes())
            sessions = {"proxy": proxied, "direct_name": direct, "direct_address": direct}
            figures["http"] = await _scheme(sessions, "http", sizes.egress_requests)
            if os.path.exists(HOST_CA_BUNDLE):
                figures["https"] = await _scheme(sessions, "https", sizes.egress_requests)
            else:
                figures["https_skipped"] = "%s is missing" % HOST_CA_BUNDLE
        finally:
            await asyncio.gather(proxied.destroy(), direct.destroy())
    return figures


async def measure(sizes: Sizes) -> dict[str, Any]:
    served = await asyncio.to_thread(launcher.start, SERVER_CONFIG)
    try:
        return await _measure(served, sizes)
    except BaseException:
        print("the egress server's log, last lines:\n%s" % served.log()[-4000:], file=sys.stderr)
        raise
    finally:
        try:
            await asyncio.to_thread(served.stop)
        finally:
            served.remove_state()  # the proxy's files and process too
