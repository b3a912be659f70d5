"""Which local user is on the other end of a request's connection.

A kernel's sockets are Unix sockets on this host, so only a process on this
host can use them, and the server lets exactly that process's user in. Over a
Unix socket the kernel says who the peer is (``SO_PEERCRED``); over loopback
TCP, the peer's socket is in ``/proc/net/tcp``, with its owner's uid, as an
ident server would find it. A peer on another machine has no local user.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from tornado import httputil

PROC_TABLES = {socket.AF_INET: "/proc/net/tcp", socket.AF_INET6: "/proc/net/tcp6"}
TCP_ESTABLISHED = "01"


def peer_uid(request: httputil.HTTPServerRequest) -> int | None:
    """The uid of the process that sent ``request``, if it runs on this host; None otherwise."""
    stream = getattr(request.connection, "stream", None)
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    if sock.family == socket.AF_UNIX:
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", credentials)[1])
    if sock.family not in PROC_TABLES:
        return None
    peer, local = sock.getpeername(), sock.getsockname()
    if not ipaddress.ip_address(peer[0]).is_loopback:
        return None
    return _owner_of(PROC_TABLES[sock.family], sock.family, peer, local)


def _owner_of(table: str, family: int, peer: tuple[str, int], local: tuple[str, int]) -> int | None:
    """The uid column of the connection from ``peer`` to ``local`` (the peer's own end of it)."""
    wanted = (_hex_address(family, peer), _hex_address(family, local))
    with open(table, encoding="ascii") as rows:
        next(rows)  # the header
        for row in rows:
            fields = row.split()
            if (fields[1], fields[2]) == wanted and fields[3] == TCP_ESTABLISHED:
                return int(fields[7])
    return None


def _hex_address(family: int, address: tuple[str, int]) -> str:
    """An address as /proc/net/tcp writes it: the IP's bytes as host-order 32-bit words in hex, then the port."""
    packed = socket.inet_pton(family, address[0])
    words = struct.unpack("=%dI" % (len(packed) // 4), packed)
    return "%s:%04X" % ("".join("%08X" % word for word in words), address[1])
