"""What the egress proxy refused, read back from squid's access.log: each line once, in bounded bites.

Squid logs every request in the ``sandkasten`` format (``egress_squid_conf``)
with the session and the rule that decided it; the lines that name no
``allow:`` rule are the refusals, counted per session. The reader keeps its
place in a position file ("inode offset"), so a restarted server counts
nothing twice; after a rotation it reads the old file to its end before the
new one, and after a truncation it starts over. The lines come from, or
through, sandbox code, so a call reads a bounded number of bytes, overlong
lines are skipped, and a line that does not parse is no refusal.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import stat
from dataclasses import dataclass
from urllib.parse import unquote

from .egress_files import read_text, write_file

READ_CAP = 256 * 1024  # access.log bytes read per call
LINE_CAP = 4096  # longer access.log lines are skipped: their fields come from sandbox code


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


class RefusalLog:
    """The refusals in ``access_log`` that no reader sharing ``position_path`` has read yet.

    Not thread-safe: its owner serializes the calls.
    """

    def __init__(self, access_log: str, position_path: str) -> None:
        self.access_log = access_log
        self.position_path = position_path  # "inode offset", root's
        self._fd: int | None = None  # access.log (or the file it was before a rotation), being read
        self._offset = 0
        self._skipping = False  # inside an overlong line
        self._tail_bytes = b""  # the last bytes read: gone from their place means the file was truncated
        self.caught_up = True  # whether the last ``read`` got to the end of what was logged

    def read(self, max_bytes: int = READ_CAP) -> list[Refusal]:
        """Refusals logged since the last call: at most ``max_bytes`` of access.log read (call again for more,
        until ``caught_up``: a bite of allowed requests holds no refusal, yet more may follow).

        Resumes where the last reader stopped, even in another process; follows rotation (the old
        file is read to its end first) and truncation. A line is a refusal when its rule is not
        ``allow:...`` and not ``-``; a line that does not parse is skipped.
        """
        found: list[Refusal] = []
        if self._fd is None:
            self._resume()
        before = self._position()
        remaining = max_bytes
        self.caught_up = True
        for _file in range(2):  # the file held, then (rotated) its successor
            if self._fd is None and not self._open(self.access_log):
                break
            used, at_end = self._read(found, remaining)
            remaining -= used
            successor = at_end and self._replaced()
            self.caught_up = at_end and not successor
            if not successor or remaining <= 0:
                break
            self.close()
        if self._position() != before:
            with contextlib.suppress(OSError):
                write_file(self.position_path, ("%d %d\n" % self._position()).encode(), 0o600, 0, always=True)
        return found

    def close(self) -> None:
        """Let go of the file held; the next ``read`` resumes from the position file."""
        if self._fd is not None:
            os.close(self._fd)
        self._fd, self._offset, self._skipping, self._tail_bytes = None, 0, False, b""

    def _position(self) -> tuple[int, int]:
        if self._fd is None:
            return 0, 0
        return os.fstat(self._fd).st_ino, self._offset

    def _resume(self) -> None:
        """Open the file the last reader was in (access.log, or access.log.1 if rotated since) at its offset."""
        try:
            inode, offset = (int(field) for field in read_text(self.position_path).split())
        except ValueError:
            inode, offset = 0, 0
        for path in (self.access_log, self.access_log + ".1"):
            if self._open(path) and self._fd is not None:
                if os.fstat(self._fd).st_ino == inode:
                    self._offset = max(0, offset)
                    return
                self.close()
        self._open(self.access_log)

    def _open(self, path: str) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return False
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # run/ is squid's to write: trust no name in it
            os.close(fd)
            return False
        self._fd, self._offset, self._skipping, self._tail_bytes = fd, 0, False, b""
        return True

    def _replaced(self) -> bool:
        try:
            current = os.stat(self.access_log, follow_symlinks=False).st_ino
        except OSError:
            return False  # moved away and not yet reopened by squid: keep the old one
        return self._fd is not None and current != os.fstat(self._fd).st_ino

    def _read(self, found: list[Refusal], budget: int) -> tuple[int, bool]:
        """Parse complete lines from the held file; (bytes consumed, whether all there was got read)."""
        assert self._fd is not None
        size = os.fstat(self._fd).st_size
        tail = self._tail_bytes
        if size < self._offset or (tail and os.pread(self._fd, len(tail), self._offset - len(tail)) != tail):
            self._offset, self._skipping = 0, False  # truncated in place (and maybe written again since)
        data = os.pread(self._fd, max(0, min(budget, size - self._offset)), self._offset)
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
        self._offset += position
        if position:
            self._tail_bytes = data[max(0, position - 32) : position]
        return position, self._offset + (len(data) - position) >= size


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
