"""The egress proxy: entries and matching (pure), squid's helper (a process), and a real squid on 127.0.0.1.

No Docker: squid runs on the host anyway. On this machine every name resolves
to one intercepting gateway, so an allowed name gets the gateway's 200 and a
refused one squid's 403 (which never resolves it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandkasten_kernel.engine import egress_match
from sandkasten_kernel.engine.egress_log import READ_CAP, Refusal, parse_log_line
from sandkasten_kernel.engine.egress_match import covers, decide, matches, normalize_entry
from sandkasten_kernel.engine.egress_proxy import EgressProxy, SessionEgress
from sandkasten_kernel.engine.egress_squid_conf import BLOCKED_IPV6, blocked_networks
from sandkasten_kernel.engine.errors import EngineError
from sandkasten_kernel.engine.sandbox_network import DROPPED_BY_DEFAULT

HELPER = egress_match.__file__

# -- entries


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("deb.debian.org", "deb.debian.org"),
        ("Deb.Debian.ORG.", "deb.debian.org"),
        (" pypi.org ", "pypi.org"),
        ("*.pythonhosted.org", "*.pythonhosted.org"),
        ("*.PythonHosted.org.", "*.pythonhosted.org"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("*.bücher.de", "*.xn--bcher-kva.de"),
        ("1password.com", "1password.com"),
        ("_dmarc.example.org", "_dmarc.example.org"),
        ("10.20.0.0/16", "10.20.0.0/16"),
        ("10.20.0.5", "10.20.0.5/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
    ],
)
def test_entries_come_out_in_normal_form(text: str, normal: str) -> None:
    assert normalize_entry(text) == normal
    assert normalize_entry(normal) == normal


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("*", "wildcard"),
        ("*.", "wildcard"),
        ("*foo.org", "wildcard"),
        ("a.*.org", "wildcard"),
        ("*.*.org", "wildcard"),
        ("::1", "IPv6"),
        ("2001:db8::/32", "IPv6"),
        ("[::1]", "URL or an IPv6"),
        ("deb.debian.org:443", "port"),
        ("https://deb.debian.org/", "URL"),
        ("10.0.0.1/8", "host bits"),
        ("10.0.0.0/33", "neither"),
        ("127.1", "neither"),  # what inet_aton reads as 127.0.0.1
        ("0x7f.0.0.1", "neither"),
        ("2130706433", "neither"),
        ("foo.123", "IP address"),
        ("a..b", "empty label"),
        (".example.org", "empty label"),
        ("-a.org", "characters"),
        ("a-.org", "characters"),
        ("a b.org", "characters"),
        ("a\nb.org", "characters"),
        ("a%2eb.org", "characters"),
        ("a\x00.org", "characters"),
        ("x" * 64 + ".org", "longer than 63"),
        (".".join(["a" * 60] * 5), "longer than 253"),
    ],
)
def test_entries_that_are_none_say_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        normalize_entry(text)


def test_a_non_string_entry_is_refused() -> None:
    with pytest.raises(ValueError):
        normalize_entry(42)  # type: ignore[arg-type]


# -- matching


@pytest.mark.parametrize(
    ("host", "entry", "expected"),
    [
        ("deb.debian.org", "deb.debian.org", True),
        ("DEB.debian.org.", "deb.debian.org", True),
        ("deb.debian.org:443", "deb.debian.org", True),
        ("security.debian.org", "deb.debian.org", False),
        ("deb.debian.org.evil.org", "deb.debian.org", False),
        ("files.pythonhosted.org", "*.pythonhosted.org", True),
        ("a.b.pythonhosted.org", "*.pythonhosted.org", True),
        ("pythonhosted.org", "*.pythonhosted.org", False),  # never the apex
        ("evilpythonhosted.org", "*.pythonhosted.org", False),
        ("10.20.3.4", "10.20.0.0/16", True),
        ("10.21.3.4", "10.20.0.0/16", False),
        ("[10.20.3.4]:443", "10.20.0.0/16", True),
        ("10.20.3.4", "10.20.3.4/32", True),
        ("0xa.20.3.4", "10.20.0.0/16", True),  # the address a resolver would read
        ("10.20.3.4", "deb.debian.org", False),
        ("deb.debian.org", "0.0.0.0/0", False),  # names never match networks
        ("[::1]", "0.0.0.0/0", False),
        ("[::ffff:10.20.3.4]", "10.20.0.0/16", True),
        ("", "deb.debian.org", False),
        ("deb.debian.org\n", "deb.debian.org", False),
    ],
)
def test_matches(host: str, entry: str, expected: bool) -> None:
    assert matches(host, entry) is expected


POLICY = {
    "session": "s1",
    "allow": ["deb.debian.org", "*.pythonhosted.org", "10.20.0.0/16"],
    "deny": ["evil.pythonhosted.org", "10.20.9.0/24"],
}


@pytest.mark.parametrize(
    ("host", "verdict"),
    [
        ("deb.debian.org", (True, "allow:deb.debian.org")),
        ("files.pythonhosted.org", (True, "allow:*.pythonhosted.org")),
        ("evil.pythonhosted.org", (False, "deny:evil.pythonhosted.org")),  # denies come first
        ("security.debian.org", (False, "not-allowed")),
        ("10.20.1.1", (True, "allow:10.20.0.0/16")),
        ("10.20.9.1", (False, "deny:10.20.9.0/24")),
        ("203.0.113.80", (False, "ip-literal")),
        ("[2001:db8::1]:443", (False, "ip-literal")),
        ("2001:db8::1", (False, "ip-literal")),
        ("deb.debian.org:443", (True, "allow:deb.debian.org")),
        ("deb.debian.org%3A443", (True, "allow:deb.debian.org")),  # squid escapes what it hands over
        ("a%0Adeb.debian.org", (False, "bad-host")),
        ("deb.debian.org:99999999", (False, "bad-host")),
        ("[deb.debian.org]", (False, "bad-host")),
        ("[::1", (False, "bad-host")),
        ("deb.debian.org:", (False, "bad-host")),
        ("bücher.de", (False, "bad-host")),  # clients send IDNA; a raw name could map onto another
        ("x" * 2000, (False, "bad-host")),
        ("-", (False, "bad-host")),
        ("", (False, "bad-host")),
    ],
)
def test_decide(host: str, verdict: tuple[bool, str]) -> None:
    assert decide(POLICY, host) == verdict


def test_decide_without_a_policy_or_with_a_broken_one() -> None:
    assert decide(None, "deb.debian.org") == (False, "no-session")
    assert decide({"allow": "deb.debian.org"}, "deb.debian.org") == (False, "not-allowed")  # not a list
    assert decide({"allow": [None, 3, "deb.debian.org"]}, "deb.debian.org") == (True, "allow:deb.debian.org")
    assert decide({"allow": ["not a/cidr"]}, "10.0.0.1") == (False, "ip-literal")


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("deb.debian.org", "deb.debian.org", True),
        ("*.debian.org", "deb.debian.org", True),
        ("*.org", "deb.debian.org", True),
        ("*.debian.org", "debian.org", False),
        ("deb.debian.org", "security.debian.org", False),
        ("*.b", "*.a.b", True),
        ("*.a.b", "*.a.b", True),
        ("*.a.b", "*.b", False),
        ("*.a.b", "*.xa.b", False),
        ("a.b", "*.a.b", False),
        ("10.0.0.0/8", "10.20.0.0/16", True),
        ("10.0.0.0/8", "10.0.0.0/8", True),
        ("10.20.0.0/16", "10.0.0.0/8", False),
        ("0.0.0.0/0", "deb.debian.org", False),
        ("*.org", "10.0.0.0/8", False),
    ],
)
def test_covers(outer: str, inner: str, expected: bool) -> None:
    assert covers(outer, inner) is expected


def test_blocked_networks_have_the_opened_holes_cut_out() -> None:
    blocked = blocked_networks(["10.0.0.0/8", "192.168.0.0/16"], ["10.20.0.0/16", "192.168.0.0/16"])
    assert blocked[-len(BLOCKED_IPV6) :] == list(BLOCKED_IPV6)
    v4 = blocked[: -len(BLOCKED_IPV6)]
    assert "192.168.0.0/16" not in v4 and "10.0.0.0/8" not in v4
    assert "10.0.0.0/12" in v4 and "10.128.0.0/9" in v4
    assert all(not covers(network, "10.20.1.0/24") for network in v4)
    assert blocked_networks(["10.0.0.0/8"], ["0.0.0.0/0"]) == list(BLOCKED_IPV6)  # squid gets a non-empty list


# -- the helper, as squid runs it


def _helper(policy_path: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["/usr/bin/python3", "-I", HELPER, policy_path], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )


def _ask(helper: subprocess.Popen[bytes], line: bytes) -> str:
    assert helper.stdin is not None and helper.stdout is not None
    helper.stdin.write(line + b"\n")
    helper.stdin.flush()
    return helper.stdout.readline().decode().rstrip("\n")


def test_the_helper_answers_every_line_once_and_fails_closed(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    helper = _helper(str(policy))
    try:
        assert _ask(helper, b"127.0.0.1 deb.debian.org -") == "ERR session=- rule=no-policy"  # no file yet
        policy.write_text(json.dumps({"127.0.0.1": {"session": "s 1", "allow": ["deb.debian.org"], "deny": []}}))
        assert _ask(helper, b"127.0.0.1 deb.debian.org -") == "OK session=s%201 rule=allow:deb.debian.org"
        assert _ask(helper, b"127.0.0.2 deb.debian.org -") == "ERR session=- rule=no-session"
        assert _ask(helper, b"::ffff:127.0.0.1 deb.debian.org -").startswith("OK ")
        assert _ask(helper, b"127.0.0.1 - deb.debian.org -").startswith("OK ")  # no SNI: the CONNECT's host
        assert _ask(helper, b"127.0.0.1 security.debian.org deb.debian.org -").startswith("ERR ")
        hostile = [b"", b"x", b"\xff\xfe \x00", b"127.0.0.1 " + b"a" * 70000, b"127.0.0.1 \xc3\x28.org -", b"\t"]
        for line in hostile:
            assert _ask(helper, line).startswith("ERR ")
        assert _ask(helper, b"127.0.0.1 " + b"a" * 70000) == "ERR session=- rule=bad-request"  # no desync after it
        assert _ask(helper, b"127.0.0.1 deb.debian.org -").startswith("OK ")
        policy.write_text("{not json")
        assert _ask(helper, b"127.0.0.1 deb.debian.org -") == "ERR session=- rule=no-policy"
        policy.write_text(json.dumps(["a list"]))
        assert _ask(helper, b"127.0.0.1 deb.debian.org -") == "ERR session=- rule=no-policy"
        policy.write_text(json.dumps({"127.0.0.1": "not a policy"}))
        assert _ask(helper, b"127.0.0.1 deb.debian.org -") == "ERR session=- rule=no-session"
        # Still in step: one answer per request, the last one about the last request.
        policy.write_text(json.dumps({"127.0.0.1": {"session": "s2", "allow": ["*.debian.org"]}}))
        assert _ask(helper, b"127.0.0.1 security.debian.org -") == "OK session=s2 rule=allow:*.debian.org"
    finally:
        assert helper.stdin is not None
        helper.stdin.close()
        assert helper.wait(timeout=10) == 0


def test_the_helper_costs_tens_of_microseconds(tmp_path: Path) -> None:
    policies = {
        "172.21.%d.%d" % (i // 250, i % 250): {
            "session": "s%d" % i,
            "allow": ["deb.debian.org", "*.pythonhosted.org", "10.0.0.0/8"]
            + ["h%d.example.org" % j for j in range(20)],
            "deny": ["*.evil.org"],
        }
        for i in range(500)
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policies))
    files = egress_match.PolicyFile(str(path))
    line = "172.21.0.7 security.debian.org -"  # refused: every entry is tried
    assert egress_match.answer(files, line) == "ERR session=s7 rule=not-allowed"
    started = time.perf_counter()
    for _ in range(2000):
        egress_match.answer(files, line)
    per_answer = (time.perf_counter() - started) / 2000
    assert per_answer < 0.001, per_answer  # ~25 us here, stat of policy.json included


# -- the access log


def _line(
    rule: str, *, session: str = "s1", dest: str = "security.debian.org", sni: str = "-", method: str = "GET"
) -> bytes:
    return (
        "1796074170.842 172.21.0.2 TCP_DENIED/403 %s session=%s rule=%s %s - sni=%s 80"
        % (method, session, rule, dest, sni)
    ).encode()


def test_log_lines_parse_into_refusals_and_nothing_else() -> None:
    assert parse_log_line(_line("not-allowed")) == Refusal(
        "s1", "172.21.0.2", "security.debian.org", "GET", "not-allowed", 1796074170.842
    )
    assert parse_log_line(_line("allow:deb.debian.org")) is None
    assert parse_log_line(_line("-")) is None
    sni = parse_log_line(_line("sni-not-allowed", dest="deb.debian.org", sni="a%0Ab.org", method="CONNECT"))
    assert sni is not None and sni.destination == "a\nb.org" and sni.rule == "sni-not-allowed"
    mixed = parse_log_line(_line("allow:*.debian.org,port"))
    assert mixed is not None and mixed.rule == "port"
    nobody = parse_log_line(_line("no-session", session="-"))
    assert nobody is not None and nobody.session_id == ""
    for hostile in [
        b"",
        b"garbage",
        _line("not-allowed") + b" extra",
        _line("not-allowed").replace(b"1796074170.842", b"yesterday"),
        _line("not-allowed").replace(b"172.21.0.2", b"somewhere"),
        _line("not-allowed").replace(b"session=", b"sessio="),
        b"\xff" * 100,
        _line("not-allowed", dest="a b"),
    ]:
        assert parse_log_line(hostile) is None


@pytest.fixture
def egress_dir() -> Iterator[str]:
    """A short directory the proxy user can reach (tmp_path's parents are 0700)."""
    if os.geteuid() != 0:
        pytest.skip("the egress proxy needs root (it hands its files to the proxy user)")
    top = tempfile.mkdtemp(prefix="skeg", dir="/tmp")
    os.chmod(top, 0o755)
    try:
        yield os.path.join(top, "eg")
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _log_proxy(egress_dir: str) -> EgressProxy:
    proxy = EgressProxy(egress_dir, "127.0.0.1", 1, [], [])
    os.makedirs(proxy.run_dir)
    return proxy


def test_a_bite_of_allowed_requests_is_not_the_end_of_the_log(egress_dir: str) -> None:
    """The reader says when it has more: a count drained "up to this moment" must not stop at a bite that
    held only allowed requests (a busy sandbox logs far more of those than of refusals)."""
    proxy = _log_proxy(egress_dir)
    allowed = _line("allow:deb.debian.org") + b"\n"
    with open(proxy.access_log, "ab") as f:
        f.write(allowed * (2 * READ_CAP // len(allowed)) + _line("not-allowed", dest="late.org") + b"\n")
    assert proxy.refusals() == [] and not proxy.refusals_caught_up
    seen: list[str] = []
    for _ in range(4):
        seen += [r.destination for r in proxy.refusals()]
        if proxy.refusals_caught_up:
            break
    assert seen == ["late.org"] and proxy.refusals_caught_up


def test_refusals_are_read_once_across_rotation_truncation_and_restarts(egress_dir: str) -> None:
    proxy = _log_proxy(egress_dir)
    cut = _line("port", dest="b.org")
    with open(proxy.access_log, "ab") as f:
        f.write(_line("not-allowed", dest="a.org") + b"\n" + _line("allow:x") + b"\n" + cut[:50])
    assert [r.destination for r in proxy.refusals()] == ["a.org"]  # the last line is not complete yet
    with open(proxy.access_log, "ab") as f:
        f.write(cut[50:] + b"\n" + b"x" * 10000 + b"\n" + _line("ip-literal", dest="1.2.3.4") + b"\n")
    assert [r.destination for r in proxy.refusals()] == ["b.org", "1.2.3.4"]  # the overlong line is skipped
    assert proxy.refusals() == []
    # A new reader (a restarted server) goes on where the last one stopped.
    with open(proxy.access_log, "ab") as f:
        f.write(_line("not-allowed", dest="c.org") + b"\n")
    proxy = EgressProxy(proxy.egress_dir, "127.0.0.1", 1, [], [])
    assert [r.destination for r in proxy.refusals()] == ["c.org"]
    # Rotated: the rest of the old file first, then the new one.
    with open(proxy.access_log, "ab") as f:
        f.write(_line("not-allowed", dest="d.org") + b"\n")
    os.replace(proxy.access_log, proxy.access_log + ".1")
    with open(proxy.access_log, "wb") as f:
        f.write(_line("not-allowed", dest="e.org") + b"\n")
    assert [r.destination for r in proxy.refusals()] == ["d.org", "e.org"]
    # Truncated in place: from its start again.
    with open(proxy.access_log, "wb") as f:
        f.write(_line("not-allowed", dest="f.org") + b"\n")
    assert [r.destination for r in proxy.refusals()] == ["f.org"]
    # Bounded: a long backlog comes over several calls, nothing lost, nothing twice.
    with open(proxy.access_log, "ab") as f:
        f.write(b"".join(_line("not-allowed", dest="n%d.org" % i) + b"\n" for i in range(3000)))
    drained: list[Refusal] = []
    for _ in range(100):
        batch = proxy.refusals(max_bytes=64 * 1024)
        if not batch:
            break
        drained += batch
    assert [r.destination for r in drained] == ["n%d.org" % i for i in range(3000)]


def test_a_link_in_place_of_the_log_is_not_followed(egress_dir: str) -> None:
    proxy = _log_proxy(egress_dir)
    secret = os.path.join(os.path.dirname(egress_dir), "secret")
    with open(secret, "wb") as f:
        f.write(_line("not-allowed") + b"\n")
    os.symlink(secret, proxy.access_log)
    assert proxy.refusals() == []


def test_policies_are_written_normalized_and_never_look_unchanged(egress_dir: str) -> None:
    proxy = _log_proxy(egress_dir)
    os.chmod(egress_dir, 0o750)
    stamps = set()
    for _ in range(20):  # same size, same coarse mtime: the helper must still see each one as new
        proxy.set_policies({"172.21.0.2": SessionEgress("s1", ("Deb.Debian.Org.",), ())})
        info = os.stat(proxy.policy_path)
        stamps.add((info.st_ino, info.st_mtime_ns, info.st_size))
    assert len(stamps) == 20
    assert json.loads(Path(proxy.policy_path).read_text()) == {
        "172.21.0.2": {"session": "s1", "allow": ["deb.debian.org"], "deny": []}
    }
    assert oct(os.stat(proxy.policy_path).st_mode & 0o777) == "0o640"
    with pytest.raises(EngineError, match="wildcard"):
        proxy.set_policies({"172.21.0.2": SessionEgress("s1", ("*",), ())})
    with pytest.raises(EngineError):
        proxy.set_policies({"not an ip": SessionEgress("s1", (), ())})


def test_bad_settings_are_clear_errors() -> None:
    with pytest.raises(EngineError, match="absolute path"):
        EgressProxy("/tmp/with space", "127.0.0.1", 3128, [], [])
    with pytest.raises(EngineError, match="absolute path"):
        EgressProxy("relative", "127.0.0.1", 3128, [], [])
    with pytest.raises(EngineError):
        EgressProxy("/tmp/x", "::1", 3128, [], [])
    with pytest.raises(EngineError, match="port"):
        EgressProxy("/tmp/x", "127.0.0.1", 0, [], [])
    with pytest.raises(EngineError):
        EgressProxy("/tmp/x", "127.0.0.1", 3128, ["10.0.0.1/8"], [])


def test_a_directory_the_proxy_user_cannot_enter_is_named(egress_dir: str) -> None:
    if shutil.which("squid", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("squid is not installed")
    hidden = os.path.join(os.path.dirname(egress_dir), "hidden")
    os.mkdir(hidden, 0o700)
    with pytest.raises(EngineError, match="cannot enter %s" % hidden):
        EgressProxy(os.path.join(hidden, "eg"), "127.0.0.1", 3128, [], []).ensure_running()


def test_a_port_someone_else_holds_fails_clearly(egress_dir: str) -> None:
    if shutil.which("squid", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("squid is not installed")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proxy = EgressProxy(egress_dir, "127.0.0.1", taken.getsockname()[1], ["10.0.0.0/8"], [])
        try:
            with pytest.raises(EngineError, match="Address already in use"):
                proxy.ensure_running()  # connecting succeeds (to the other socket): not taken for squid listening
        finally:
            proxy.stop()
        assert proxy.pid() is None


# -- a real squid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def squid() -> Iterator[EgressProxy]:
    """A running proxy on 127.0.0.1 with a policy for 127.0.0.1; killed at the end whatever happened."""
    if os.geteuid() != 0:
        pytest.skip("the egress proxy needs root (squid starts as root and becomes the proxy user)")
    if shutil.which("squid", path="/usr/sbin:/usr/bin") is None:
        pytest.skip("squid is not installed (apt-get install squid-openssl)")
    top = tempfile.mkdtemp(prefix="skeg", dir="/tmp")
    os.chmod(top, 0o755)
    proxy = EgressProxy(os.path.join(top, "eg"), "127.0.0.1", _free_port(), list(DROPPED_BY_DEFAULT), [])
    try:
        proxy.ensure_running()
        proxy.set_policies(POLICIES)
        yield proxy
    finally:
        pid = proxy.pid()
        with contextlib.suppress(Exception):
            proxy.stop()
        if pid is not None and proxy.pid() == pid:  # stop() failed: make sure no squid outlives the tests
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(top, ignore_errors=True)


POLICIES = {"127.0.0.1": SessionEgress("s-test", ("deb.debian.org", "10.255.255.0/24"), ("*.evil.org",))}


def _request(proxy: EgressProxy, request: bytes, timeout_s: float = 10.0) -> tuple[int, socket.socket]:
    """Send ``request`` to the proxy; its status and the socket (open, for a CONNECT to go on)."""
    sock = socket.create_connection((proxy.listen_ip, proxy.port), timeout=timeout_s)
    sock.sendall(request)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, sock


def _get(proxy: EgressProxy, url: str) -> int:
    host = url.split("/")[2]
    status, sock = _request(
        proxy, b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (url.encode(), host.encode())
    )
    sock.close()
    return status


def _connect(proxy: EgressProxy, authority: str) -> int:
    status, sock = _request(
        proxy, b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority.encode(), authority.encode())
    )
    sock.close()
    return status


def _tls_through(proxy: EgressProxy, authority: str, sni: str | None) -> str:
    """CONNECT, then a TLS handshake with ``sni``; the status line of a GET inside, or the error."""
    status, sock = _request(proxy, b"CONNECT %s HTTP/1.1\r\n\r\n" % authority.encode())
    assert status == 200
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the gateway's CA is the host's only
    try:
        with context.wrap_socket(sock, server_hostname=sni) as tls:
            tls.sendall(b"GET /debian/README HTTP/1.1\r\nHost: deb.debian.org\r\nConnection: close\r\n\r\n")
            return tls.recv(4096).split(b"\r\n", 1)[0].decode()
    except (OSError, ssl.SSLError) as exc:
        return "cut: %s" % type(exc).__name__


def _refusals(proxy: EgressProxy, count: int) -> list[Refusal]:
    """The next ``count`` refusals (squid logs a request when it ends)."""
    found: list[Refusal] = []
    deadline = time.monotonic() + 5
    while len(found) < count and time.monotonic() < deadline:
        found += proxy.refusals()
        time.sleep(0.02)
    return found


def _refusal_of(proxy: EgressProxy, method: str, destination: str) -> Refusal:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for refusal in proxy.refusals():
            if (refusal.method, refusal.destination) == (method, destination):
                return refusal
        time.sleep(0.02)
    raise AssertionError("no refusal of %s %s logged" % (method, destination))


def test_squid_lets_through_what_the_policy_allows_and_refuses_the_rest(squid: EgressProxy) -> None:
    squid.refusals()  # drain
    assert _get(squid, "http://deb.debian.org/debian/README") == 200
    assert _get(squid, "http://security.debian.org/") == 403
    assert _connect(squid, "security.debian.org:443") == 403  # a plain 403, not bumped into TLS
    assert _get(squid, "http://203.0.113.80/") == 403
    assert _connect(squid, "203.0.113.80:443") == 403
    assert _get(squid, "http://www.evil.org/") == 403
    assert _connect(squid, "deb.debian.org:22") == 403
    assert _get(squid, "http://deb.debian.org:8080/") == 403
    assert _get(squid, "http://10.255.255.53/") == 403  # allowed by the policy, but in a blocked range
    assert _connect(squid, "10.255.255.53:443") == 403
    refusals = _refusals(squid, 9)
    assert {(r.session_id, r.method, r.destination, r.rule) for r in refusals} == {
        ("s-test", "GET", "security.debian.org", "not-allowed"),
        ("s-test", "CONNECT", "security.debian.org", "not-allowed"),
        ("s-test", "GET", "203.0.113.80", "ip-literal"),
        ("s-test", "CONNECT", "203.0.113.80", "ip-literal"),
        ("s-test", "GET", "www.evil.org", "deny:*.evil.org"),
        ("s-test", "CONNECT", "deb.debian.org", "port"),
        ("s-test", "GET", "deb.debian.org", "port"),
        ("s-test", "GET", "10.255.255.53", "blocked-address"),
        ("s-test", "CONNECT", "10.255.255.53", "blocked-address"),
    }
    assert all(r.source == "127.0.0.1" and abs(r.time - time.time()) < 60 for r in refusals)


def test_tls_is_spliced_only_when_the_sni_is_allowed_too(squid: EgressProxy) -> None:
    squid.refusals()
    assert _tls_through(squid, "deb.debian.org:443", "deb.debian.org") == "HTTP/1.1 200 OK"
    assert _tls_through(squid, "deb.debian.org:443", None) == "HTTP/1.1 200 OK"  # no SNI: the CONNECT's name
    assert _tls_through(squid, "deb.debian.org:443", "security.debian.org").startswith("cut")
    assert _tls_through(squid, "deb.debian.org:443", "a\n127.0.0.1 deb.debian.org").startswith("cut")
    refusals = [r for r in _refusals(squid, 2) if r.rule == "sni-not-allowed"]
    assert [(r.method, r.destination, r.rule) for r in refusals] == [
        ("CONNECT", "security.debian.org", "sni-not-allowed"),
        ("CONNECT", "a\n127.0.0.1 deb.debian.org", "sni-not-allowed"),
    ]
    # Had the newline reached the helper raw, it would have answered twice: squid drops an answer it did not ask
    # for, unless it came late, after the next question (then every answer is one behind: an OK for a refused name).
    for _ in range(3):
        assert _tls_through(squid, "deb.debian.org:443", "security.debian.org").startswith("cut")
        assert _tls_through(squid, "deb.debian.org:443", "deb.debian.org") == "HTTP/1.1 200 OK"
    assert "unexpected read" not in Path(squid.cache_log).read_text(errors="replace")


def test_a_new_policy_applies_to_the_next_request_without_a_restart(squid: EgressProxy) -> None:
    pid = squid.pid()
    try:
        squid.set_policies({"127.0.0.1": SessionEgress("s-test", ("*.debian.org",), ())})
        assert _get(squid, "http://security.debian.org/") == 200
        squid.set_policies({})
        assert _get(squid, "http://deb.debian.org/debian/README") == 403
        assert _refusal_of(squid, "GET", "deb.debian.org").rule == "no-session"
    finally:
        squid.set_policies(POLICIES)
    assert squid.pid() == pid


def test_a_second_proxy_object_adopts_the_running_squid(squid: EgressProxy) -> None:
    pid = squid.pid()
    assert pid is not None
    again = EgressProxy(squid.egress_dir, squid.listen_ip, squid.port, list(DROPPED_BY_DEFAULT), [])
    started = time.monotonic()
    again.ensure_running()  # a restarted server: same files, nothing to do
    assert again.pid() == pid and time.monotonic() - started < 1.0
    assert _get(again, "http://deb.debian.org/debian/README") == 200
    # Other settings: the same squid reloads them (the policy file stays).
    wider = EgressProxy(squid.egress_dir, squid.listen_ip, squid.port, list(DROPPED_BY_DEFAULT), ["10.255.255.0/24"])
    wider.ensure_running()
    assert wider.pid() == pid
    assert _get(wider, "http://security.debian.org/") == 403
    squid.ensure_running()  # and back
    assert squid.pid() == pid


def test_squid_resolves_no_name_the_policy_refuses(squid: EgressProxy, tmp_path: Path) -> None:
    """Else a sandbox could send anything out as DNS queries for names under a domain of its own."""
    if shutil.which("strace") is None:
        pytest.skip("needs strace")
    trace = tmp_path / "trace"
    fresh = "probe%d" % os.getpid()  # an allowed name squid has not cached: its lookup shows the trace sees DNS
    squid.set_policies({"127.0.0.1": SessionEgress("s-test", ("deb.debian.org", fresh + ".debian.org"), ())})
    tracer = subprocess.Popen(
        ["strace", "-f", "-p", str(squid.pid()), "-e", "trace=sendto,sendmsg", "-s", "128", "-o", str(trace)],
        stderr=subprocess.PIPE,
    )
    try:
        assert tracer.stderr is not None
        assert b"attached" in tracer.stderr.readline()
        assert _get(squid, "http://exfil-get.example.org/") == 403
        assert _connect(squid, "exfil-connect.example.org:443") == 403
        assert _tls_through(squid, "deb.debian.org:443", "exfil-sni.example.org").startswith("cut")
        _get(squid, "http://%s.debian.org/" % fresh)
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
        squid.set_policies(POLICIES)
    sent = trace.read_text(encoding="latin-1")
    assert fresh in sent
    assert "exfil" not in sent


def test_rotated_logs_are_reopened_and_read_to_their_end(squid: EgressProxy) -> None:
    squid.refusals()
    assert _get(squid, "http://old.example.org/") == 403
    assert _refusal_of(squid, "GET", "old.example.org").rule == "not-allowed"
    assert _get(squid, "http://before.example.org/") == 403
    squid.rotate_logs()
    deadline = time.monotonic() + 5
    while not os.path.exists(squid.access_log):  # squid reopens it on SIGUSR1
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert _get(squid, "http://after.example.org/") == 403
    seen: list[str] = []
    while "after.example.org" not in seen and time.monotonic() < deadline:
        seen += [r.destination for r in squid.refusals()]
        time.sleep(0.02)
    assert seen == ["before.example.org", "after.example.org"]
    assert os.path.exists(squid.access_log + ".1") and os.path.exists(squid.cache_log)


def test_a_log_flood_is_rotated_away(squid: EgressProxy) -> None:
    """Refusals a sandbox provokes at will are log lines on the host's /run: past a size the log is rotated."""
    squid.refusals()
    assert not squid.rotate_logs_over(1 << 30)
    assert _get(squid, "http://flood.example.org/") == 403
    deadline = time.monotonic() + 5
    while os.path.getsize(squid.access_log) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert squid.rotate_logs_over(0)
    assert os.path.exists(squid.access_log + ".1")
    seen: list[str] = []
    while "flood.example.org" not in seen and time.monotonic() < deadline:
        seen += [r.destination for r in squid.refusals()]  # the rotated file is read to its end
        time.sleep(0.02)
    assert "flood.example.org" in seen


def test_the_configuration_parses_without_a_warning(squid: EgressProxy) -> None:
    parsed = subprocess.run(
        [shutil.which("squid", path="/usr/sbin:/usr/bin") or "squid", "-k", "parse", "-f", squid.conf_path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert parsed.returncode == 0
    assert not [line for line in parsed.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    # What a sandbox chooses reaches helpers and the log URL-escaped: never a raw space or newline.
    conf = Path(squid.conf_path).read_text()
    assert "%#ssl::>sni" in conf and "%#DST" in conf and " %ssl::>sni" not in conf and " %DST" not in conf


def test_files_are_the_roots_and_readable_by_squid(squid: EgressProxy) -> None:
    import grp

    proxy_gid = grp.getgrnam("proxy").gr_gid
    for name, mode in [("squid.conf", 0o640), ("egress_match.py", 0o640), ("tls.pem", 0o640), ("resolv.conf", 0o644)]:
        info = os.stat(os.path.join(squid.egress_dir, name))
        assert info.st_uid == 0 and info.st_mode & 0o777 == mode, name
        assert mode == 0o644 or info.st_gid == proxy_gid, name
    directory = os.stat(squid.egress_dir)
    assert (directory.st_uid, directory.st_gid, directory.st_mode & 0o777) == (0, proxy_gid, 0o750)
    assert Path(squid.resolv_conf).read_text() == "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"


def test_stop_ends_squid_and_a_restart_while_it_stops_waits_for_it(squid: EgressProxy) -> None:
    pid = squid.pid()
    assert pid is not None
    os.kill(pid, signal.SIGTERM)  # shutting down (shutdown_lifetime 1 s): a new start must wait it out
    deadline = time.monotonic() + 5
    while "Preparing for shutdown" not in Path(squid.cache_log).read_text(errors="replace"):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    squid.ensure_running()
    new_pid = squid.pid()
    assert new_pid is not None and new_pid != pid
    assert _get(squid, "http://deb.debian.org/debian/README") == 200
    squid.stop()
    assert squid.pid() is None
    with pytest.raises(OSError):
        socket.create_connection((squid.listen_ip, squid.port), timeout=1).close()
