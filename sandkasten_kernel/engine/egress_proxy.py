"""The egress proxy: one squid per server that lets each sandbox reach the names its policy allows, and no others.

Domains cannot be told apart by IP rules (one CDN address serves many names,
and here every name resolves to one gateway), so sandboxes with an egress
policy reach the outside only through an explicit HTTP proxy that decides by
name before it resolves anything. Squid does the HTTP, CONNECT, DNS, TLS peek
and logging; the decisions are ``egress_match``'s, run by squid as an external
ACL helper that reads ``policy.json``. Policies then change by replacing that
file, with no reconfigure: squid 5.7 closes its listening socket for ~75 ms on
every reconfigure, which would refuse other sessions' new connections.

Per request squid checks, in this order: the policy (by source IP: ``deny:``,
``allow:``, else refused; IP literals only when an allowed network covers
them); the port (80 or 443; CONNECT to 443 only); then the addresses the name
resolved to, refused in the blocked ranges unless opened (private, metadata,
...; loopback always), so a name a policy refuses is never resolved. For
CONNECT it then peeks at the TLS ClientHello and splices only when the SNI is
allowed too. Refusals go to ``access.log`` with the session and the rule, which
``refusals()`` reads back. Squid's own connections still need the host's
firewall (an OUTPUT rule for the proxy user: see ``proxy_uid``).

Two squid behaviours shape the configuration: a CONNECT denied in
``http_access`` on an ``ssl-bump`` port is answered with 200 and the error is
served inside TLS under our throwaway certificate, so CONNECT refusals are
decided in ``http_access`` as an annotation and sent as a plain 403 from
``miss_access``; and format codes reach helpers unescaped unless marked with
``#``, so a newline in an SNI would split a helper request in two and shift
every later answer by one.

The directory, ``egress_dir``: root's, group ``proxy``, 0750, holding what
squid reads and must not change (squid.conf, the helper, tls.pem,
policy.json, resolv.conf for sandboxes to mount). ``run/`` in it is the
proxy user's (pid file and logs). Squid is started in a session of its own and
outlives the server; the next server adopts it.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import ipaddress
import json
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from urllib.parse import unquote

from . import egress_match
from .errors import EgressProxyError

log = logging.getLogger("sandkasten.engine")

PROXY_USER = "proxy"  # Debian's squid user; squid drops to it right after start
PYTHON = "/usr/bin/python3"  # the helper runs on the host's python, with -I: no site, no environment
SQUID_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # shutdown_lifetime is 1 s; helpers and open tunnels get the rest
READ_CAP = 256 * 1024  # access.log bytes read per refusals() call
LINE_CAP = 4096  # longer access.log lines are skipped: their fields come from sandbox code
OUTPUT_CAP = 64 * 1024  # squid.out is cut back to nothing beyond this at each start

# Never reached through the proxy, whatever egress_allow says: IPv6 has no egress lists (sandboxes have no IPv6),
# so the special ranges are refused here and the firewall refuses the rest for the proxy user. (Not ::ffff:0:0/96:
# squid keeps IPv4 addresses in that form, so it would mean every IPv4 address; mapped answers meet the IPv4 list.)
BLOCKED_IPV6 = (
    "::/127",  # unspecified, loopback
    "64:ff9b::/96",  # NAT64: any IPv4 address, private ones too, through a translator
    "fc00::/7",  # unique local (AWS's IPv6 metadata address, fd00:ec2::254, is one)
    "fe80::/10",  # link-local
    "ff00::/8",  # multicast
)

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")  # squid.conf has no quoting: no spaces, quotes, or '%'

SQUID_CONF = Template("""\
# Written by sandkasten (egress_proxy.py) and overwritten at each server start: change the server's settings instead.
http_port ${listen}:${port} ssl-bump cert=${dir}/tls.pem generate-host-certificates=off
pid_filename ${run}/squid.pid
cache_log ${run}/cache.log
coredump_dir ${run}
cache_effective_user ${user}
cache deny all
cache_mem 0 MB
pinger_enable off
hosts_file none
netdb_filename none
forwarded_for delete
httpd_suppress_version_string on
visible_hostname sandkasten-egress
shutdown_lifetime 1 seconds
logfile_rotate 0

# Fields a sandbox chooses are URL-escaped (%#...): no spaces or newlines of theirs reach a log line.
logformat sandkasten %ts.%03tu %>a %Ss/%>Hs %#rm session=%{session}note rule=%{rule}note %#>rd %<a sni=%#ssl::>sni %#>rP
access_log stdio:${run}/access.log sandkasten

# The helper answers "OK|ERR session=<id> rule=<rule>"; ttl=0: policy.json changes apply to the next request.
# Values are URL-escaped (%#...): a newline in an SNI would otherwise split a request and shift every answer.
external_acl_type sk_dst ttl=0 negative_ttl=0 children-max=8 children-startup=1 children-idle=1 %SRC %#DST \
${python} -I ${dir}/egress_match.py ${dir}/policy.json
external_acl_type sk_sni ttl=0 negative_ttl=0 children-max=8 children-startup=1 children-idle=1 %SRC %#ssl::>sni \
%#DST ${python} -I ${dir}/egress_match.py ${dir}/policy.json

acl CONNECT method CONNECT
acl web_ports port 80 443
acl tls_ports port 443
acl policy external sk_dst
acl sni_policy external sk_sni
acl blocked_dst dst ${blocked}
acl step1 at_step SslBump1
acl r_port annotate_transaction rule=port
acl r_blocked annotate_transaction rule=blocked-address
acl r_sni annotate_transaction rule=sni-not-allowed
acl r_refuse annotate_transaction refused=yes
acl refused note refused yes

# The policy comes first: nothing is resolved for a name it refuses (blocked_dst resolves).
http_access deny manager
http_access deny !CONNECT !policy
http_access deny !CONNECT !web_ports r_port
http_access deny !CONNECT to_localhost r_blocked
http_access deny !CONNECT blocked_dst r_blocked
http_access allow !CONNECT
# A CONNECT denied here would be bumped to show the error under our certificate: refuse it in miss_access instead.
http_access allow !policy r_refuse
http_access allow !tls_ports r_port r_refuse
http_access allow to_localhost r_blocked r_refuse
http_access allow blocked_dst r_blocked r_refuse
http_access allow all
miss_access deny refused
miss_access allow all

# TLS is never decrypted: peek at the ClientHello, splice when its SNI is allowed too, else cut.
ssl_bump splice step1 refused
ssl_bump peek step1
ssl_bump splice sni_policy
ssl_bump terminate all r_sni
""")

RESOLV_CONF = "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"  # sandboxes fail fast on names


@dataclass(frozen=True)
class SessionEgress:
    """What one sandbox may reach: normalized entries (see ``egress_match.normalize_entry``)."""

    session_id: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refusal:
    """A request squid refused, from ``access.log``; every text field came from, or through, sandbox code.

    ``session_id`` is empty when the source had no policy; ``destination`` is the refused SNI for
    ``sni-not-allowed``, else the request's host.
    """

    session_id: str
    source: str
    destination: str
    method: str
    rule: str
    time: float


def proxy_uid() -> int:
    """The uid squid runs as: the host's firewall keeps its own connections off the host and private ranges."""
    return _proxy_user().pw_uid


def _proxy_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PROXY_USER)
    except KeyError:
        raise EgressProxyError(
            "there is no '%s' user for squid to run as: install squid-openssl" % PROXY_USER
        ) from None


def blocked_networks(blocked_cidrs: Sequence[str], opened_cidrs: Sequence[str]) -> list[str]:
    """``blocked_cidrs`` less ``opened_cidrs``, as IPv4 networks, then ``BLOCKED_IPV6``.

    Squid's ``dst`` matches when any address of a name is listed, so the holes are cut out
    of the list instead of allowed after it: an opened address never lets a blocked one through.
    """
    opened = [ipaddress.IPv4Network(cidr) for cidr in opened_cidrs]
    remaining: list[ipaddress.IPv4Network] = []
    for cidr in blocked_cidrs:
        pieces = [ipaddress.IPv4Network(cidr)]
        for hole in opened:
            cut: list[ipaddress.IPv4Network] = []
            for piece in pieces:
                if hole.supernet_of(piece):
                    continue
                cut.extend(piece.address_exclude(hole) if piece.supernet_of(hole) else [piece])
            pieces = cut
        remaining.extend(pieces)
    return [str(network) for network in ipaddress.collapse_addresses(remaining)] + list(BLOCKED_IPV6)


class EgressProxy:
    """The squid of ``egress_dir``, listening on ``listen_ip:port``; adopted when already running."""

    def __init__(
        self, egress_dir: str, listen_ip: str, port: int, blocked_cidrs: Sequence[str], opened_cidrs: Sequence[str]
    ) -> None:
        if not _SAFE_PATH.match(egress_dir) or "/../" in egress_dir + "/":
            raise EgressProxyError(
                "the egress directory %r must be an absolute path of letters, digits and ._/- only (squid.conf "
                "cannot quote)" % egress_dir
            )
        try:
            self.listen_ip = str(ipaddress.IPv4Address(listen_ip))
            self.blocked_cidrs = tuple(str(ipaddress.IPv4Network(cidr)) for cidr in blocked_cidrs)
            self.opened_cidrs = tuple(str(ipaddress.IPv4Network(cidr)) for cidr in opened_cidrs)
            self._blocked = blocked_networks(self.blocked_cidrs, self.opened_cidrs)
        except ValueError as exc:
            raise EgressProxyError("egress proxy: %s" % exc) from None
        if not 0 < port < 65536:
            raise EgressProxyError("egress proxy: %r is not a TCP port" % port)
        self.egress_dir = os.path.normpath(egress_dir)
        self.port = port
        self.run_dir = os.path.join(self.egress_dir, "run")
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._log_fd: int | None = None  # access.log (or the file it was before a rotation), being read
        self._log_offset = 0
        self._skipping = False  # inside an overlong access.log line
        self._log_tail_bytes = b""  # the last bytes read: gone from their place means the file was truncated
        self._policy_mtime_ns = 0

    @staticmethod
    def proxy_uid() -> int:
        """The uid squid runs as (see the module's ``proxy_uid``)."""
        return proxy_uid()

    # -- paths

    @property
    def conf_path(self) -> str:
        return os.path.join(self.egress_dir, "squid.conf")

    @property
    def policy_path(self) -> str:
        return os.path.join(self.egress_dir, "policy.json")

    @property
    def resolv_conf(self) -> str:
        """A resolv.conf for sandboxes to mount read-only over theirs: lookups fail at once, not after 10 s."""
        return os.path.join(self.egress_dir, "resolv.conf")

    @property
    def access_log(self) -> str:
        return os.path.join(self.run_dir, "access.log")

    @property
    def cache_log(self) -> str:
        return os.path.join(self.run_dir, "cache.log")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.run_dir, "squid.pid")

    @property
    def _applied_path(self) -> str:
        """The hash of what the running squid loaded (conf, helper, certificate): root's, beside them."""
        return os.path.join(self.egress_dir, "squid.conf.applied")

    # -- squid

    def squid_conf(self) -> str:
        """The squid.conf for this proxy."""
        return SQUID_CONF.substitute(
            listen=self.listen_ip,
            port=self.port,
            dir=self.egress_dir,
            run=self.run_dir,
            user=PROXY_USER,
            python=PYTHON,
            blocked=" ".join(self._blocked),
        )

    def ensure_running(self) -> None:
        """Write the files, then adopt the running squid (reconfigured if its files changed) or start one.

        Returns once squid listens. Cheap when all is in place: call it to supervise, too.
        """
        with self._lock:
            user = _proxy_user()
            squid = _squid_binary()
            if not os.access(PYTHON, os.X_OK):
                raise EgressProxyError("egress proxy: squid runs its policy helper with %s, which is missing" % PYTHON)
            self._prepare_dirs(user)
            digest = self._write_files(user)
            pid = self._settled_pid()
            if pid is not None and _read_text(self._applied_path) == digest:
                return  # what runs is what we would load: no `squid -k parse` (0.1 s) before every sandbox
            self._check_conf(squid)
            if pid is not None:
                self._reconfigure(pid)
            else:
                self._start(squid)
            _write_file(self._applied_path, digest.encode(), 0o640, 0)

    def pid(self) -> int | None:
        """The pid of the squid running with our conf, or None."""
        self._reap()
        try:
            with open(self.pid_file, "rb") as f:
                pid = int(f.read(32).strip() or b"0")
        except (OSError, ValueError):
            return None
        if pid <= 1 or not _is_our_squid(pid, self.conf_path):
            return None
        return pid

    def stop(self) -> None:
        """SIGTERM squid and wait until it is gone (SIGKILL after ``STOP_TIMEOUT_S``); nothing when none runs."""
        with self._lock:
            pid = self.pid()
            if pid is not None:
                _signal(pid, signal.SIGTERM)
                if not self._wait_gone(pid, STOP_TIMEOUT_S):
                    log.warning("egress proxy: squid %d did not stop within %.0f s: killed", pid, STOP_TIMEOUT_S)
                    _signal(pid, signal.SIGKILL)
                    self._wait_gone(pid, 5.0)
            self._reap()
            self._close_log()

    def rotate_logs(self) -> None:
        """Move access.log and cache.log aside (``.1``, replacing the last) and make squid reopen them.

        ``refusals()`` reads the rest of the old access.log before it turns to the new one.
        """
        with self._lock:
            pid = self.pid()
            for path in (self.access_log, self.cache_log):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(path, path + ".1")
            if pid is not None:
                _signal(pid, signal.SIGUSR1)

    def _prepare_dirs(self, user: pwd.struct_passwd) -> None:
        try:
            os.makedirs(self.egress_dir, mode=0o750, exist_ok=True)
            _own_dir(self.egress_dir, 0, user.pw_gid, 0o750)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.run_dir, 0o750)
            _own_dir(self.run_dir, user.pw_uid, user.pw_gid, 0o750)
        except PermissionError as exc:
            raise EgressProxyError("egress proxy: %s (the proxy needs root)" % exc) from None
        except OSError as exc:
            raise EgressProxyError("egress proxy: cannot set up %s: %s" % (self.egress_dir, exc)) from None
        _check_reachable(self.egress_dir, user)

    def _write_files(self, user: pwd.struct_passwd) -> str:
        """Write what squid and sandboxes read; the digest of what a (re)loaded squid would use."""
        gid = user.pw_gid
        conf = self.squid_conf().encode()
        with open(egress_match.__file__, "rb") as f:
            helper = f.read()
        try:
            _write_file(self.conf_path, conf, 0o640, gid)
            _write_file(os.path.join(self.egress_dir, "egress_match.py"), helper, 0o640, gid)
            _write_file(self.resolv_conf, RESOLV_CONF.encode(), 0o644, 0)
            if not os.path.exists(self.policy_path):
                _write_file(self.policy_path, b"{}\n", 0o640, gid)
            tls = self._ensure_certificate(gid)
        except OSError as exc:
            raise EgressProxyError("egress proxy: cannot write to %s: %s" % (self.egress_dir, exc)) from None
        return hashlib.sha256(b"\0".join((conf, helper, tls))).hexdigest()

    def _ensure_certificate(self, gid: int) -> bytes:
        """A throwaway self-signed certificate: ``ssl-bump`` needs one, clients never see it (splice or cut only)."""
        path = os.path.join(self.egress_dir, "tls.pem")
        existing = _read_bytes(path)
        if b"BEGIN CERTIFICATE" in existing and b"PRIVATE KEY" in existing:
            return existing
        with tempfile.TemporaryDirectory(dir=self.egress_dir) as scratch:
            key, cert = os.path.join(scratch, "key.pem"), os.path.join(scratch, "cert.pem")
            new = ("-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "36500")
            made = _run(["openssl", "req", *new, "-subj", "/CN=sandkasten-egress", "-keyout", key, "-out", cert])
            if made.returncode != 0:
                raise EgressProxyError("egress proxy: openssl could not make tls.pem: %s" % made.stdout.strip()[-500:])
            pem = _read_bytes(key) + _read_bytes(cert)
        _write_file(path, pem, 0o640, gid)
        return pem

    def _check_conf(self, squid: str) -> None:
        parsed = _run([squid, "-k", "parse", "-f", self.conf_path])
        problems = [line for line in parsed.stdout.splitlines() if re.search(r"\b(ERROR|FATAL)\b", line)]
        if problems or parsed.returncode != 0:
            hint = " (is it squid-openssl? ssl-bump needs it)" if "ssl" in parsed.stdout.lower() else ""
            raise EgressProxyError(
                "egress proxy: squid rejects %s%s: %s"
                % (self.conf_path, hint, "; ".join(problems[:5]) or parsed.stdout.strip()[-500:])
            )

    def _settled_pid(self) -> int | None:
        """Our squid once it listens; None once none runs (a stopping one is waited out: starting another
        before it has gone makes the new one exit, "FATAL: Squid is already running")."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            pid = self.pid()
            if pid is None:
                return None
            if self._listening() and not self._stopping():
                return pid
            if time.monotonic() > deadline:  # neither starting nor stopping: hung
                raise EgressProxyError(
                    "egress proxy: squid %d runs with %s but does not listen on %s:%d%s"
                    % (pid, self.conf_path, self.listen_ip, self.port, self._log_tail())
                )
            time.sleep(0.05)

    def _start(self, squid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)  # stale (pid() said no squid of ours has it): squid would refuse to start
        log_offset = _size(self.cache_log)
        output_path = os.path.join(self.run_dir, "squid.out")
        with contextlib.suppress(OSError):
            if os.path.getsize(output_path) > OUTPUT_CAP:
                os.truncate(output_path, 0)
        with open(output_path, "ab") as output:
            try:
                process = subprocess.Popen(
                    [squid, "-N", "-f", self.conf_path],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    cwd=self.run_dir,
                    start_new_session=True,  # outlives the server; the next one adopts it
                )
            except OSError as exc:
                raise EgressProxyError("egress proxy: cannot start squid: %s" % exc) from None
        self._process = process
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self._accepting_since(log_offset) and self.pid() == process.pid):
            if process.poll() is not None:
                self._process = None
                raise EgressProxyError(
                    "egress proxy: squid exited (status %s) before listening on %s:%d%s"
                    % (process.returncode, self.listen_ip, self.port, self._log_tail())
                )
            if time.monotonic() > deadline:
                raise EgressProxyError(
                    "egress proxy: squid does not listen on %s:%d after %.0f s%s"
                    % (self.listen_ip, self.port, START_TIMEOUT_S, self._log_tail())
                )
            time.sleep(0.02)
        log.info("egress proxy: squid %d listens on %s:%d", process.pid, self.listen_ip, self.port)

    def _reconfigure(self, pid: int) -> None:
        """SIGHUP (what ``squid -k reconfigure`` sends), then wait until squid accepts again.

        Squid closes and reopens its listening socket on a reconfigure; a new "Accepting"
        line in cache.log says it is back.
        """
        offset = _size(self.cache_log)
        _signal(pid, signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._accepting_since(offset):
            if time.monotonic() > deadline or self.pid() != pid:
                raise EgressProxyError(
                    "egress proxy: squid %d did not take its new configuration%s" % (pid, self._log_tail())
                )
            time.sleep(0.02)
        log.info("egress proxy: squid %d reconfigured", pid)

    def _accepting_since(self, offset: int) -> bool:
        """Whether squid logged since ``offset`` of cache.log that it accepts on our address, and does.

        A connection alone proves nothing: another process may hold the port, and squid then exits
        ("Cannot bind socket ... Address already in use", "FATAL: Unable to open HTTP Socket").
        """
        logged = _read_bytes(self.cache_log, offset)
        ours = b"local=%s:%d " % (self.listen_ip.encode(), self.port)
        return any(b"Accepting " in line and ours in line for line in logged.splitlines()) and self._listening()

    def _stopping(self) -> bool:
        """Whether squid said it shuts down since it last said it accepts (it still listens for a moment)."""
        logged = _read_bytes(self.cache_log, max(0, _size(self.cache_log) - 64 * 1024))
        return logged.rfind(b"Preparing for shutdown") > logged.rfind(b"Accepting ")

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.listen_ip, self.port), timeout=1.0):
                return True
        except OSError:
            return False

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self._reap()
            if not _alive(pid):
                return True
            time.sleep(0.02)
        return False

    def _reap(self) -> None:
        """Collect our own squid once it has exited: it is our child until the server exits."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None

    def _log_tail(self) -> str:
        """What squid said last, its complaints first: for the error that says it would not run."""
        lines = []
        for path in (self.cache_log, os.path.join(self.run_dir, "squid.out")):
            text = _read_bytes(path, max(0, _size(path) - 8000)).decode("utf-8", "replace")
            lines += [line for line in text.splitlines() if line.strip()]
        complaints = [line for line in lines if re.search(r"FATAL|ERROR|Cannot|cannot|failed", line)]
        shown = list(dict.fromkeys(complaints[-6:] + lines[-4:]))
        return (":\n" + "\n".join(shown)) if shown else ""

    # -- policies

    def set_policies(self, policies: Mapping[str, SessionEgress]) -> None:
        """Replace policy.json with ``policies`` by sandbox IP; the helper applies it to the next request.

        Written to a temporary file and renamed over, with an mtime later than the last one's, so
        the helper's (inode, mtime, size) check never mistakes a new file for one it has read.
        """
        document: dict[str, dict[str, object]] = {}
        try:
            for address, egress in policies.items():
                ip = str(ipaddress.IPv4Address(address))
                document[ip] = {
                    "session": egress.session_id,
                    "allow": [egress_match.normalize_entry(entry) for entry in egress.allow],
                    "deny": [egress_match.normalize_entry(entry) for entry in egress.deny],
                }
        except ValueError as exc:
            raise EgressProxyError("egress policy: %s" % exc) from None
        data = (json.dumps(document, sort_keys=True, indent=1) + "\n").encode()
        gid = _proxy_user().pw_gid
        with self._lock:
            try:
                previous = os.stat(self.policy_path).st_mtime_ns
            except OSError:
                previous = 0
            mtime_ns = max(time.time_ns(), previous + 1, self._policy_mtime_ns + 1)
            try:
                _write_file(self.policy_path, data, 0o640, gid, mtime_ns=mtime_ns, always=True)
            except OSError as exc:
                raise EgressProxyError("egress policy: cannot write %s: %s" % (self.policy_path, exc)) from None
            self._policy_mtime_ns = mtime_ns

    # -- refusals

    @property
    def _position_path(self) -> str:
        """Where the reader got to in access.log ("inode offset"), so a restarted server counts nothing twice."""
        return os.path.join(self.egress_dir, "access.log.position")

    def refusals(self, max_bytes: int = READ_CAP) -> list[Refusal]:
        """Refusals logged since the last call: at most ``max_bytes`` of access.log read (call again for more).

        Resumes where the last reader stopped, even in another process; follows rotation (the old
        file is read to its end first) and truncation. A line is a refusal when its rule is not
        ``allow:...`` and not ``-``; a line that does not parse is skipped.
        """
        found: list[Refusal] = []
        with self._lock:
            if self._log_fd is None:
                self._resume_log()
            before = self._position()
            remaining = max_bytes
            for _file in range(2):  # the file held, then (rotated) its successor
                if self._log_fd is None and not self._open_log(self.access_log):
                    break
                used, at_end = self._read_log(found, remaining)
                remaining -= used
                if not at_end or remaining <= 0 or not self._log_replaced():
                    break
                self._close_log()
            if self._position() != before:
                with contextlib.suppress(OSError):
                    _write_file(self._position_path, ("%d %d\n" % self._position()).encode(), 0o600, 0, always=True)
        return found

    def _position(self) -> tuple[int, int]:
        if self._log_fd is None:
            return 0, 0
        return os.fstat(self._log_fd).st_ino, self._log_offset

    def _resume_log(self) -> None:
        """Open the file the last reader was in (access.log, or access.log.1 if rotated since) at its offset."""
        try:
            inode, offset = (int(field) for field in _read_text(self._position_path).split())
        except ValueError:
            inode, offset = 0, 0
        for path in (self.access_log, self.access_log + ".1"):
            if self._open_log(path) and self._log_fd is not None:
                if os.fstat(self._log_fd).st_ino == inode:
                    self._log_offset = max(0, offset)
                    return
                self._close_log()
        self._open_log(self.access_log)

    def _open_log(self, path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # run/ is squid's to write: trust no name in it
            os.close(fd)
            return False
        self._log_fd, self._log_offset, self._skipping, self._log_tail_bytes = fd, 0, False, b""
        return True

    def _close_log(self) -> None:
        if self._log_fd is not None:
            os.close(self._log_fd)
        self._log_fd, self._log_offset, self._skipping, self._log_tail_bytes = None, 0, False, b""

    def _log_replaced(self) -> bool:
        try:
            current = os.stat(self.access_log, follow_symlinks=False).st_ino
        except OSError:
            return False  # moved away and not yet reopened by squid: keep the old one
        return self._log_fd is not None and current != os.fstat(self._log_fd).st_ino

    def _read_log(self, found: list[Refusal], budget: int) -> tuple[int, bool]:
        """Parse complete lines from the held file; (bytes consumed, whether all there was got read)."""
        assert self._log_fd is not None
        size = os.fstat(self._log_fd).st_size
        tail = self._log_tail_bytes
        if size < self._log_offset or (
            tail and os.pread(self._log_fd, len(tail), self._log_offset - len(tail)) != tail
        ):
            self._log_offset, self._skipping = 0, False  # truncated in place (and maybe written again since)
        data = os.pread(self._log_fd, max(0, min(budget, size - self._log_offset)), self._log_offset)
        position = 0
        while True:
            newline = data.find(b"\n", position)
            if newline < 0:
                if len(data) - position > LINE_CAP:  # an overlong line: drop what there is, and the rest of it
                    self._skipping, position = True, len(data)
                break
            line = data[position:newline]
            position = newline + 1
            if self._skipping:
                self._skipping = False
                continue
            if len(line) <= LINE_CAP:
                refusal = parse_log_line(line)
                if refusal is not None:
                    found.append(refusal)
        self._log_offset += position
        if position:
            self._log_tail_bytes = data[max(0, position - 32) : position]
        return position, self._log_offset + (len(data) - position) >= size


def parse_log_line(line: bytes) -> Refusal | None:
    """The refusal in one line of our access.log format, or None (an allowed request, or a line that does not parse)."""
    fields = line.decode("utf-8", "replace").split(" ")
    if len(fields) != 10:
        return None
    when, source, _status, method, session, rule, destination, _server, sni, _port = fields
    if not (session.startswith("session=") and rule.startswith("rule=") and sni.startswith("sni=")):
        return None
    try:
        moment = float(when)
        ipaddress.ip_address(source)
    except ValueError:
        return None
    refused = [value for value in rule[5:].split(",") if value and value != "-" and not value.startswith("allow:")]
    if not refused:
        return None
    session_id = unquote(session[8:])
    rule_name = unquote(refused[-1])
    if rule_name == "sni-not-allowed" and sni[4:] not in ("", "-"):
        destination = sni[4:]
    return Refusal(
        session_id="" if session_id == "-" else session_id,
        source=source,
        destination=unquote(destination)[:255],
        method=unquote(method)[:32],
        rule=rule_name[:300],
        time=moment,
    )


# -- helpers


def _squid_binary() -> str:
    found = shutil.which("squid", path=SQUID_SEARCH_PATH + ":" + os.environ.get("PATH", ""))
    if found is None:
        raise EgressProxyError("egress policies need squid: install squid-openssl (apt-get install squid-openssl)")
    return found


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EgressProxyError("egress proxy: %s: %s" % (command[0], exc)) from None


def _own_dir(path: str, uid: int, gid: int, mode: int) -> None:
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise EgressProxyError("egress proxy: %s is not a directory" % path)
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def _check_reachable(path: str, user: pwd.struct_passwd) -> None:
    """Squid and its helper run as ``user``: every directory above ``path`` must let it through."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    parent = os.path.dirname(path)
    while True:
        info = os.stat(parent)
        if info.st_uid == user.pw_uid:
            ok = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            ok = bool(info.st_mode & stat.S_IXGRP)
        else:
            ok = bool(info.st_mode & stat.S_IXOTH)
        if not ok:
            owner = _name(pwd.getpwuid, info.st_uid), _name(grp.getgrgid, info.st_gid)
            raise EgressProxyError(
                "egress proxy: squid runs as '%s', which cannot enter %s (mode %o, %s:%s): allow it (chmod o+x) or "
                "put the egress directory elsewhere" % (user.pw_name, parent, stat.S_IMODE(info.st_mode), *owner)
            )
        if parent == "/":
            return
        parent = os.path.dirname(parent)


def _name(lookup: Callable[[int], Sequence[object]], ident: int) -> str:
    """The user or group name of ``ident`` (``pwd.getpwuid``, ``grp.getgrgid``), or the number."""
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)


def _write_file(
    path: str, data: bytes, mode: int, gid: int, *, mtime_ns: int | None = None, always: bool = False
) -> None:
    """``data`` at ``path``, owned by root:``gid`` with ``mode``, replaced atomically; untouched when already so."""
    if not always:
        try:
            info = os.lstat(path)
            if (
                stat.S_ISREG(info.st_mode)
                and (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, mode)
                and _read_bytes(path) == data
            ):
                return
        except OSError:
            pass
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchown(f.fileno(), 0, gid)
            os.fchmod(f.fileno(), mode)
            f.write(data)
        if mtime_ns is not None:
            os.utime(temporary, ns=(mtime_ns, mtime_ns))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _read_bytes(path: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.pread(fd, limit, offset)
    finally:
        os.close(fd)


def _read_text(path: str) -> str:
    return _read_bytes(path, limit=4096).decode("ascii", "replace").strip()


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _is_our_squid(pid: int, conf_path: str) -> bool:
    """Whether ``pid`` is a live squid started with ``-f conf_path``.

    The pid file is squid's to write, so the pid is only trusted once its command line names our
    conf. (Not its uid: squid takes root back for a moment while it reconfigures.)"""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read(4096).split(b"\0")
    except OSError:
        return False
    if not argv or os.path.basename(argv[0]) != b"squid" or conf_path.encode() not in argv:
        return False
    return _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return False


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise EgressProxyError("egress proxy: cannot signal squid %d: %s" % (pid, exc)) from None
