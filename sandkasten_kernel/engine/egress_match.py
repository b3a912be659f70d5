"""Which destinations a sandbox may reach through the egress proxy: entries, matching, and squid's helper.

Standard library only, and no imports from the package: squid runs a copy of
this file as its external ACL helper, as the ``proxy`` user
(``/usr/bin/python3 -I <dir>/egress_match.py <dir>/policy.json``), and the
engine imports it to check and normalize policies, so both sides match alike.

Entries are host names (``deb.debian.org``), wildcards that match subdomains
only (``*.pythonhosted.org``: never the apex, unlike squid's ``.x.org``) and
IPv4 networks (``10.20.0.0/16``, an address alone is its /32). Names never
match IP literals and networks never match names: a name is checked before
anything resolves it (squid resolves only what was allowed), and where a name
points is the firewall's and squid's ``dst`` check's business.

The helper answers squid's external ACL protocol (concurrency 0): one line in,
``<source ip> <host>`` (``%SRC %DST`` or ``%SRC %ssl::>sni``, values
URL-escaped by squid), one line out, ``OK|ERR session=<id> rule=<rule>``. It
re-reads ``policy.json`` (``{"<source ip>": {"session": id, "allow": [...],
"deny": [...]}}``, replaced atomically by the engine) whenever its inode, mtime
or size changes, so policies change without a reconfigure (which would close
squid's listening socket for a moment). Everything it reads comes from sandbox
code or could be damaged: it never crashes on input, and refuses when in doubt.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import socket
import sys
from typing import Any
from urllib.parse import quote, unquote

_MAX_NAME = 253
_MAX_LABEL = 63
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_TOKEN_SAFE = "*:._-/"  # kept as they are in the helper's replies (rules are entries, sessions ids)


def normalize_entry(text: str) -> str:
    """``text`` as a policy entry in normal form; ValueError saying why when it is none.

    A host name comes back lower-case, without a trailing dot, IDNA-encoded; a wildcard
    as ``*.`` and such a name; an IPv4 network in normal form (an address as its /32).
    """
    if not isinstance(text, str):
        raise ValueError("%r is not a string" % (text,))
    value = text.strip()
    if not value:
        raise ValueError("an empty entry: give a host name, *.domain or an IPv4 network")
    if any(ch in value for ch in "/:[]") or _looks_numeric(value):
        return _normalize_network(text, value)
    if value.startswith("*."):
        try:
            return "*." + _normalize_name(value[2:])
        except ValueError as exc:
            raise ValueError("%r is not a wildcard *.domain: %s" % (text, exc)) from None
    if "*" in value:
        raise ValueError(
            "%r: a wildcard is '*.' followed by a domain, and matches its subdomains only (not '*', '*foo.org' "
            "or 'a.*.org')" % text
        )
    try:
        return _normalize_name(value)
    except ValueError as exc:
        raise ValueError("%r is not a host name: %s" % (text, exc)) from None


def _normalize_network(text: str, value: str) -> str:
    if "://" in value or value.startswith("["):
        raise ValueError("%r: give a host name, *.domain or an IPv4 network, not a URL or an IPv6 address" % text)
    if value.count(":") == 1:  # no address has one colon: a host:port
        raise ValueError("%r: entries take no port (a host name, *.domain or an IPv4 network)" % text)
    return ipv4_network(value, "%r is neither a host name nor an IPv4 network (a CIDR such as 10.0.0.0/8)")


def ipv4_network(value: str, not_one: str = "%r is not an IPv4 network (a CIDR such as 10.0.0.0/8)") -> str:
    """``value`` as an IPv4 network in normal form (an address alone is its /32); ValueError saying why not
    (``not_one`` when it is no network at all). Also the configuration's check of its CIDR lists."""
    try:
        network = ipaddress.ip_network(value)
    except ValueError as exc:
        if "host bits set" in str(exc):
            raise ValueError(
                "%r has host bits set: did you mean %s?" % (value, ipaddress.ip_network(value, strict=False))
            ) from None
        raise ValueError(not_one % value) from None
    if network.version != 4:
        raise ValueError("%r is IPv6: sandboxes have no IPv6 at all, list IPv4 networks only" % value)
    return str(network)


def _normalize_name(value: str) -> str:
    """A host name, lower-case, IDNA-encoded, without its trailing dot; ValueError when it is not one."""
    name = value[:-1] if value.endswith(".") else value
    if not name:
        raise ValueError("empty name")
    labels = name.split(".")
    encoded = []
    for label in labels:
        if not label:
            raise ValueError("an empty label")
        if label.isascii():
            ascii_label = label.lower()
        else:
            try:
                ascii_label = label.encode("idna").decode("ascii").lower()  # IDNA 2003: the one the stdlib has
            except (UnicodeError, ValueError):
                raise ValueError("%r is not a valid internationalized label" % label) from None
        if len(ascii_label) > _MAX_LABEL:
            raise ValueError("the label %r is longer than 63 characters" % ascii_label)
        if not set(ascii_label) <= _LABEL_CHARS or ascii_label.startswith("-") or ascii_label.endswith("-"):
            raise ValueError("the label %r has characters a host name cannot have" % ascii_label)
        encoded.append(ascii_label)
    result = ".".join(encoded)
    if len(result) > _MAX_NAME:
        raise ValueError("longer than 253 characters")
    if encoded[-1].isdigit() or _looks_numeric(result):
        raise ValueError("it reads as an IP address: give IPv4 networks as CIDRs")
    return result


def _looks_numeric(value: str) -> bool:
    """Whether resolvers would take ``value`` for an IPv4 address (inet_aton: ``127.1``, ``0x7f.1``, ``2130706433``)."""
    if not value or not value.isascii() or any(ch.isspace() for ch in value):
        return False
    try:
        socket.inet_aton(value)
    except (OSError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _entry_kind(entry: str) -> tuple[str, Any]:
    """``("net", IPv4Network)``, ``("wild", ".domain")`` or ``("name", name)`` for a normalized entry."""
    if entry.startswith("*."):
        return "wild", entry[1:]
    if entry[:1].isdigit() and ("/" in entry or _looks_numeric(entry)):
        try:
            return "net", ipaddress.IPv4Network(entry)
        except ValueError:
            return "bad", entry
    return "name", entry


def parse_host(host: str) -> tuple[str, Any]:
    """A host as squid hands it over: ``("ip", IPv4Address)``, ``("ip6", text)`` or ``("name", name)``.

    Accepts a port, brackets, URL escapes, upper case and a trailing dot; ValueError for anything else.
    """
    value = host
    if "%" in value:
        value = unquote(value)
    if not value or len(value) > 1024 or any(ch.isspace() for ch in value):
        raise ValueError("not a host")
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not _is_port(value[end + 1 :])):
            raise ValueError("not a host")
        inner = value[1:end]
        try:
            address = ipaddress.ip_address(inner.split("%", 1)[0])
        except ValueError:
            raise ValueError("not a host") from None
        return _address_kind(address)
    if value.count(":") > 1:  # a bare IPv6 address
        try:
            return _address_kind(ipaddress.ip_address(value.split("%", 1)[0]))
        except ValueError:
            raise ValueError("not a host") from None
    if ":" in value:
        value, port = value.split(":", 1)
        if not _is_port(":" + port):
            raise ValueError("not a host")
    if _looks_numeric(value.rstrip(".")):
        return "ip", ipaddress.IPv4Address(socket.inet_aton(value.rstrip(".")))
    if not value.isascii():  # clients send IDNA names; a raw one could map onto another name (IDNA 2003's ß -> ss)
        raise ValueError("not a host")
    return "name", _normalize_name(value)


def _is_port(text: str) -> bool:
    return text.startswith(":") and text[1:].isdigit() and len(text) <= 6


def _address_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, Any]:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "ip", address.ipv4_mapped
        return "ip6", str(address)
    return "ip", address


def _matches_parsed(parsed: tuple[str, Any], entry: str) -> bool:
    kind, value = parsed
    entry_kind, pattern = _entry_kind(entry)
    if kind == "name":
        if entry_kind == "name":
            return bool(value == pattern)
        return entry_kind == "wild" and bool(value.endswith(pattern))
    if kind == "ip":
        return entry_kind == "net" and value in pattern
    return False


def matches(host: str, entry: str) -> bool:
    """Whether ``host`` (a name or an IPv4 literal) is what the normalized ``entry`` allows or denies."""
    try:
        parsed = parse_host(host)
    except ValueError:
        return False
    return _matches_parsed(parsed, entry)


def decide(policy_for_ip: dict[str, Any] | None, host: str) -> tuple[bool, str]:
    """Whether the source with ``policy_for_ip`` may reach ``host``, and the rule that says so.

    Rules: ``deny:<entry>`` (denies are matched first), ``allow:<entry>``, ``not-allowed``,
    ``ip-literal`` (an address no allowed network covers), ``no-session`` (no policy for the
    source), ``bad-host`` (not a host name or address at all).
    """
    if not isinstance(policy_for_ip, dict):
        return False, "no-session"
    try:
        parsed = parse_host(host)
    except ValueError:
        return False, "bad-host"
    for key, ok in (("deny", False), ("allow", True)):
        entries = policy_for_ip.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, str) and _matches_parsed(parsed, entry):
                return ok, "%s:%s" % (key, entry)
    return False, "not-allowed" if parsed[0] == "name" else "ip-literal"


def covers(outer_entry: str, inner_entry: str) -> bool:
    """Whether everything the normalized ``inner_entry`` matches, ``outer_entry`` matches too.

    A name is covered by itself or a wildcard over it; ``*.a.b`` by ``*.a.b`` or ``*.b``;
    a network by itself or a larger one. Names and networks never cover each other.
    """
    outer_kind, outer = _entry_kind(outer_entry)
    inner_kind, inner = _entry_kind(inner_entry)
    if inner_kind == "net":
        return outer_kind == "net" and bool(inner.subnet_of(outer))
    if inner_kind == "name":
        if outer_kind == "name":
            return bool(inner == outer)
        return outer_kind == "wild" and bool(inner.endswith(outer))
    if inner_kind == "wild":
        return outer_kind == "wild" and (inner == outer or bool(inner.endswith(outer)))
    return False


class PolicyFile:
    """``policy.json``, read again whenever its (inode, mtime, size) changes; failing closed when unreadable."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self.policies: dict[str, Any] | None = None  # None: no usable file

    def current(self) -> dict[str, Any] | None:
        """The policies by source IP, or None when the file is missing, unreadable or not a JSON object."""
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self.policies = None, None
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                with open(self.path, encoding="utf-8") as f:
                    loaded = json.load(f)
            except (OSError, ValueError):
                loaded = None
            self.policies = loaded if isinstance(loaded, dict) else None
        return self.policies


def answer(policies: PolicyFile, line: str) -> str:
    """The helper's reply (without newline) to one request line from squid."""
    fields = line.split()
    if len(fields) < 2:
        return "ERR session=- rule=bad-request"
    current = policies.current()
    if current is None:
        return "ERR session=- rule=no-policy"
    source = fields[0]
    policy = current.get(source)
    if policy is None:
        try:
            kind, address = parse_host(source)
        except ValueError:
            kind, address = "", None
        if kind == "ip":  # squid may hand over an IPv4-mapped IPv6 address
            policy = current.get(str(address))
    if not isinstance(policy, dict):
        return "ERR session=- rule=no-session"
    host = fields[1]
    if host == "-" and len(fields) > 2:  # a ClientHello without SNI: the CONNECT's host, checked already, decides
        host = fields[2]
    ok, rule = decide(policy, host)
    session = policy.get("session")
    return "%s session=%s rule=%s" % ("OK" if ok else "ERR", _token(session), _token(rule))


def _token(value: object) -> str:
    """A value for a helper reply: no spaces, quotes or escapes can reach squid's key=value parser or its log."""
    text = value if isinstance(value, str) and value else "-"
    return quote(text[:256], safe=_TOKEN_SAFE)


def main(argv: list[str]) -> int:
    """squid's external ACL helper loop: a request per line on stdin, a reply per line on stdout, flushed."""
    if len(argv) != 2:
        sys.stderr.write("usage: egress_match.py POLICY_JSON\n")
        return 2
    policies = PolicyFile(argv[1])
    stdin = sys.stdin.buffer
    stdout = sys.stdout
    while True:
        raw = stdin.readline(65536)
        if not raw:
            return 0
        if not raw.endswith(b"\n"):  # a line longer than we read: drop the rest of it, refuse it
            while raw and not raw.endswith(b"\n"):
                raw = stdin.readline(65536)
            reply = "ERR session=- rule=bad-request"
        else:
            try:
                reply = answer(policies, raw.decode("utf-8", "replace"))
            except Exception:  # never die on input: squid would restart us, and refuse meanwhile
                reply = "ERR session=- rule=helper-error"
        stdout.write(reply + "\n")
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
