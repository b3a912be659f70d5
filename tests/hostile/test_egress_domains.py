"""Domain policies against code that wants out: only the allowed names, through the proxy, and nothing else.

A server of its own, with ``security.egress`` set (the default policy and the
bound), next to the hostile package's server, which has none (its sessions with
network reach everything public). Every name resolves, on this kind of machine,
to one intercepting gateway, so only the proxy, which looks at names, can tell
deb.debian.org from security.debian.org: exactly what is under test.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandkasten import SandkastenError, SyncSandboxClient, SyncSession
from sandkasten_server import launcher
from sandkasten_server.launcher import Served
from tests.conftest import serving
from tests.hostile.conftest import made_sessions

pytestmark = pytest.mark.docker

ALLOWED, REFUSED = "deb.debian.org", "security.debian.org"
README = "/debian/README"
BOUND = {"allow": ["*.debian.org", ALLOWED], "deny": ["ftp.debian.org"]}
HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"

# Run inside the sandbox: `python3 - KIND ARG...`, one JSON line out.
PROBE = r"""
import json, os, socket, ssl, sys, time, urllib.request
kind, args = sys.argv[1], sys.argv[2:]
proxy = os.environ.get("HTTP_PROXY", "")
def status_line(sock):
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode("latin-1")
def to_proxy():
    host, port = proxy.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=10)
began = time.monotonic()
try:
    if kind == "get":  # urllib, as pip and requests go: the proxy from the environment
        context = ssl.create_default_context(cafile=args[1]) if len(args) > 1 else None
        with urllib.request.urlopen(args[0], timeout=15, context=context) as reply:
            out = {"status": reply.status, "bytes": len(reply.read())}
    elif kind == "raw":  # straight to an address, past the proxy
        socket.create_connection((args[0], int(args[1])), timeout=5).close()
        out = {"connected": True}
    elif kind == "resolve":
        out = {"addresses": sorted({a[4][0] for a in socket.getaddrinfo(args[0], 80)})}
    elif kind == "lying-host":  # the URL names one host, the Host header another
        sock = to_proxy()
        request = "GET http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (args[0], args[2], args[1])
        sock.sendall(request.encode())
        out = {"status_line": status_line(sock)}
    elif kind == "connect":  # CONNECT, then (with a third argument) a TLS hello naming another host
        sock = to_proxy()
        sock.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (args[0], args[0])).encode())
        out = {"status_line": status_line(sock)}
        if len(args) > 1 and " 200 " in out["status_line"] + " ":
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            try:
                context.wrap_socket(sock, server_hostname=args[1]).close()
                out["tls"] = "completed"
            except (OSError, ssl.SSLError) as exc:
                out["tls"] = "refused: %s" % type(exc).__name__
except Exception as exc:
    out = {"error": "%s: %s" % (type(exc).__name__, exc)}
out["seconds"] = round(time.monotonic() - began, 3)
print(json.dumps(out))
"""

Sessions = Callable[..., SyncSession]


def probe(session: SyncSession, kind: str, *args: str) -> dict[str, Any]:
    session.write("probe.py", PROBE)  # in /workspace
    result = session.exec(
        "python3 /workspace/probe.py " + " ".join(shlex.quote(a) for a in (kind, *args)), timeout_ms=60000
    )
    assert result.exit_code == 0, result.output
    reply: dict[str, Any] = json.loads(result.output.strip().splitlines()[-1])
    return reply


@pytest.fixture(scope="module")
def domain_server(docker_client: Any) -> Iterator[Served]:
    config = {
        "pool": {"enabled": False},
        "security": {"allow_network": True, "egress": BOUND},
        "defaults": {"memory_mb": 256, "pids": 128, "tmp_mb": 64, "workspace_mb": 64},
        "session": {"reap_interval_s": 1},
    }
    with serving(docker_client, config) as server:  # its remove_state ends the proxy, too
        yield server


@pytest.fixture
def policed(domain_server: Served) -> Iterator[Sessions]:
    with SyncSandboxClient(domain_server.base_url, domain_server.api_key) as client:
        yield from made_sessions(client)


def test_an_allowed_name_is_reached_and_a_refused_one_is_not(
    policed: Sessions, sessions: Sessions, domain_server: Served
) -> None:
    # Without a policy (the hostile suite's server), security.debian.org is there to be reached.
    open_session = sessions(network=True)
    assert probe(open_session, "get", "http://%s%s" % (REFUSED, README)).get("status") == 200

    session = policed(network={"allow": [ALLOWED]})
    info = session.info
    assert info.egress == {"allow": [ALLOWED], "deny": BOUND["deny"]}  # the bound's denials hold
    fetched = probe(session, "get", "http://%s%s" % (ALLOWED, README))
    assert fetched.get("status") == 200 and fetched["bytes"] > 100, fetched
    refused = probe(session, "get", "http://%s%s" % (REFUSED, README))
    assert "403" in refused.get("error", ""), refused

    counted = session.refresh()
    assert counted.egress_refused >= 1
    events = domain_server.call("GET", "events?session_id=%s" % session.id)["events"]
    refusals = [e["detail"] for e in events if e["kind"] == "egress_refused"]
    assert {"destination": REFUSED, "rule": "not-allowed"}.items() <= refusals[0].items(), refusals


def test_https_goes_through_by_name_without_breaking_tls(policed: Sessions) -> None:
    session = policed(network={"allow": [ALLOWED]})
    assert probe(session, "connect", REFUSED)["status_line"].split()[1] == "403"
    if os.path.exists(HOST_CA_BUNDLE):  # the machine's own trust store: its gateway's certificate is in it
        with open(HOST_CA_BUNDLE, "rb") as f:
            session.write("host-ca.crt", f.read())
        fetched = probe(session, "get", "https://%s%s" % (ALLOWED, README), "/workspace/host-ca.crt")
        assert fetched.get("status") == 200, fetched
    # CONNECT to an allowed name, then a TLS hello naming a refused one: cut off at the hello.
    smuggled = probe(session, "connect", ALLOWED, REFUSED)
    assert smuggled["status_line"].split()[1] == "200" and smuggled["tls"].startswith("refused"), smuggled


def test_no_way_out_but_the_proxy(policed: Sessions) -> None:
    session = policed(network={"allow": [ALLOWED]})
    gateway_ip = socket.gethostbyname(ALLOWED)  # where the host finds it
    raw = probe(session, "raw", gateway_ip, "80")
    assert "connected" not in raw and raw["seconds"] < 3, raw  # refused at once, not timed out
    for name in (REFUSED, ALLOWED):  # no DNS inside at all: the proxy resolves what it lets through
        resolved = probe(session, "resolve", name)
        assert "addresses" not in resolved and resolved["seconds"] < 3, resolved
    ip_url = probe(session, "get", "http://%s%s" % (gateway_ip, README))
    assert "403" in ip_url.get("error", ""), ip_url  # an address is no name the policy allows
    # The URL names a refused host and the Host header an allowed one: the URL decides.
    lying = probe(session, "lying-host", REFUSED, ALLOWED, README)
    assert lying["status_line"].split()[1] == "403", lying


def test_a_session_cannot_widen_the_configured_policy(domain_server: Served) -> None:
    with SyncSandboxClient(domain_server.base_url, domain_server.api_key) as client:
        for network, named in [
            ({"allow": ["pypi.org"]}, "pypi.org"),  # outside *.debian.org
            ({"allow": ["ftp.debian.org"]}, "ftp.debian.org"),  # denied by the configuration
            ({"allow": ["*.org"]}, "*.org"),  # wider than the bound
        ]:
            with pytest.raises(SandkastenError) as refused:
                client.create_session(network=network)
            assert refused.value.status == 403 and named in str(refused.value), refused.value
        with pytest.raises(SandkastenError) as malformed:
            client.create_session(network={"allow": ["https://deb.debian.org/"]})
        assert malformed.value.status == 400


def test_network_true_is_the_configured_policy_and_it_survives_a_restart(domain_server: Served) -> None:
    """Last in the module: it ends the module's server itself (its restarted self)."""
    with SyncSandboxClient(domain_server.base_url, domain_server.api_key) as client:
        session = client.create_session(network=True)
        assert session.info.egress == BOUND
        assert probe(session, "get", "http://%s%s" % (ALLOWED, README)).get("status") == 200
        domain_server.process.send_signal(signal.SIGTERM)  # sessions live on; so does the proxy
        domain_server.process.wait(timeout=60)
    restarted = launcher.restart(domain_server)
    try:
        with SyncSandboxClient(restarted.base_url, restarted.api_key) as client:
            again = client.get_session(session.id)
            assert again.info.egress == BOUND
            assert probe(again, "get", "http://%s%s" % (ALLOWED, README)).get("status") == 200
            refused = probe(again, "get", "http://ftp.debian.org%s" % README)
            assert "403" in refused.get("error", ""), refused
    finally:
        restarted.stop()  # destroys the session; the module's fixture then finds the server ended
