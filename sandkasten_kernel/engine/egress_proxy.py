"""The egress proxy: one squid per server that lets each sandbox reach the names its policy allows, and no others.

Domains cannot be told apart by IP rules (one CDN address serves many names,
and here every name resolves to one gateway), so sandboxes with an egress
policy reach the outside only through an explicit HTTP proxy that decides by
name before it resolves anything. Squid does the HTTP, CONNECT, DNS, TLS peek
and logging; the decisions are ``egress_match``'s, run by squid as an external
ACL helper that reads ``policy.json``. Policies then change by replacing that
file, with no reconfigure: squid 5.7 closes its listening socket for ~75 ms on
every reconfigure, which would refuse other sessions' new connections.

This module is squid's lifecycle: it writes squid's files, starts squid or
adopts the running one (reconfigured only when those files changed), stops it,
and replaces the policies. What squid checks per request is its configuration's
(``egress_squid_conf``); what it refused, ``egress_log`` reads back from
``access.log`` (``refusals()``). Squid's own connections still need the host's
firewall (an OUTPUT rule for the proxy user: see ``proxy_uid``).

The directory, ``egress_dir``: root's, group ``proxy``, 0750, holding what
squid reads and must not change (squid.conf, the helper, tls.pem,
policy.json, resolv.conf for sandboxes to mount). ``run/`` in it is the
proxy user's (pid file and logs). Squid is started in a session of its own and
outlives the server; the next server adopts it.
"""

from __future__ import annotations

import contextlib
import errno
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
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import egress_match
from .egress_files import check_reachable, file_size, own_dir, read_bytes, read_text, write_file
from .egress_log import READ_CAP, Refusal, RefusalLog
from .egress_squid_conf import PROXY_USER, PYTHON, blocked_networks, render_squid_conf
from .errors import EgressProxyError

log = logging.getLogger("sandkasten.engine")

SQUID_SEARCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0  # shutdown_lifetime is 1 s; helpers and open tunnels get the rest
OUTPUT_CAP = 64 * 1024  # squid.out is cut back to nothing beyond this at each start

_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")  # squid.conf has no quoting: no spaces, quotes, or '%'

RESOLV_CONF = "nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"  # sandboxes fail fast on names


@dataclass(frozen=True)
class SessionEgress:
    """What one sandbox may reach: normalized entries (see ``egress_match.normalize_entry``)."""

    session_id: str
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


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
        # Where the reader got to is kept beside squid's files, so a restarted server counts nothing twice.
        self._refusals = RefusalLog(self.access_log, os.path.join(self.egress_dir, "access.log.position"))
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
        return render_squid_conf(self.egress_dir, self.run_dir, self.listen_ip, self.port, self._blocked)

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
            if pid is not None and read_text(self._applied_path) == digest:
                return  # what runs is what we would load: no `squid -k parse` (0.1 s) before every sandbox
            self._check_conf(squid)
            if pid is not None:
                self._reconfigure(pid)
            else:
                self._start(squid)
            write_file(self._applied_path, digest.encode(), 0o640, 0)

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
            self._refusals.close()

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

    def rotate_logs_over(self, limit_bytes: int) -> bool:
        """``rotate_logs`` once access.log holds more than ``limit_bytes``: a sandbox knocking at refused names
        would otherwise fill the host's /run (a tmpfs, memory) with log lines. True if it rotated."""
        if file_size(self.access_log) <= limit_bytes:
            return False
        self.rotate_logs()
        return True

    def _prepare_dirs(self, user: pwd.struct_passwd) -> None:
        try:
            os.makedirs(self.egress_dir, mode=0o750, exist_ok=True)
            own_dir(self.egress_dir, 0, user.pw_gid, 0o750)
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.run_dir, 0o750)
            own_dir(self.run_dir, user.pw_uid, user.pw_gid, 0o750)
        except PermissionError as exc:
            raise EgressProxyError("egress proxy: %s (the proxy needs root)" % exc) from None
        except OSError as exc:
            raise EgressProxyError("egress proxy: cannot set up %s: %s" % (self.egress_dir, exc)) from None
        check_reachable(self.egress_dir, user)

    def _write_files(self, user: pwd.struct_passwd) -> str:
        """Write what squid and sandboxes read; the digest of what a (re)loaded squid would use."""
        gid = user.pw_gid
        conf = self.squid_conf().encode()
        with open(egress_match.__file__, "rb") as f:
            helper = f.read()
        try:
            write_file(self.conf_path, conf, 0o640, gid)
            write_file(os.path.join(self.egress_dir, "egress_match.py"), helper, 0o640, gid)
            write_file(self.resolv_conf, RESOLV_CONF.encode(), 0o644, 0)
            if not os.path.exists(self.policy_path):
                write_file(self.policy_path, b"{}\n", 0o640, gid)
            tls = self._ensure_certificate(gid)
        except OSError as exc:
            raise EgressProxyError("egress proxy: cannot write to %s: %s" % (self.egress_dir, exc)) from None
        return hashlib.sha256(b"\0".join((conf, helper, tls))).hexdigest()

    def _ensure_certificate(self, gid: int) -> bytes:
        """A throwaway self-signed certificate: ``ssl-bump`` needs one, clients never see it (splice or cut only)."""
        path = os.path.join(self.egress_dir, "tls.pem")
        existing = read_bytes(path)
        if b"BEGIN CERTIFICATE" in existing and b"PRIVATE KEY" in existing:
            return existing
        with tempfile.TemporaryDirectory(dir=self.egress_dir) as scratch:
            key, cert = os.path.join(scratch, "key.pem"), os.path.join(scratch, "cert.pem")
            new = ("-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "36500")
            made = _run(["openssl", "req", *new, "-subj", "/CN=sandkasten-egress", "-keyout", key, "-out", cert])
            if made.returncode != 0:
                raise EgressProxyError("egress proxy: openssl could not make tls.pem: %s" % made.stdout.strip()[-500:])
            pem = read_bytes(key) + read_bytes(cert)
        write_file(path, pem, 0o640, gid)
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
        log_offset = file_size(self.cache_log)
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
        offset = file_size(self.cache_log)
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
        logged = read_bytes(self.cache_log, offset)
        ours = b"local=%s:%d " % (self.listen_ip.encode(), self.port)
        return any(b"Accepting " in line and ours in line for line in logged.splitlines()) and self._listening()

    def _stopping(self) -> bool:
        """Whether squid said it shuts down since it last said it accepts (it still listens for a moment)."""
        logged = read_bytes(self.cache_log, max(0, file_size(self.cache_log) - 64 * 1024))
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
            text = read_bytes(path, max(0, file_size(path) - 8000)).decode("utf-8", "replace")
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
                write_file(self.policy_path, data, 0o640, gid, mtime_ns=mtime_ns, always=True)
            except OSError as exc:
                raise EgressProxyError("egress policy: cannot write %s: %s" % (self.policy_path, exc)) from None
            self._policy_mtime_ns = mtime_ns

    # -- refusals

    def refusals(self, max_bytes: int = READ_CAP) -> list[Refusal]:
        """Refusals logged since the last call, by this server or the last: see ``RefusalLog.read``."""
        with self._lock:
            return self._refusals.read(max_bytes)

    @property
    def refusals_caught_up(self) -> bool:
        """Whether the last ``refusals`` read all that was logged (else call it again for the rest)."""
        return self._refusals.caught_up


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
