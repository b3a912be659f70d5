"""Chains of our own at the top of the host's filter table, checked cheaply and put back atomically.

The host's firewall is shared: Docker rewrites its chains when dockerd starts,
firewalld and ufw reload theirs, an operator adds an ACCEPT. A rule appended
once at start is soon behind someone's ACCEPT, or gone. So each hook here is a
chain of ours (``SANDKASTEN-...``) with a jump to it from a built-in chain
(INPUT, FORWARD) for one interface, and ``ensure`` makes sure that

- the jump is in the leading run of sandkasten jumps of the built-in chain, so
  no rule of anyone else's is evaluated before it, and there is one of it;
- our chain holds exactly the rules we wrote (compared with what
  ``iptables-save`` printed just after we wrote them).

Checking costs one ``iptables-save -t filter``. Repairs are one
``iptables-restore --noflush`` transaction (chains rewritten, the jump moved to
the top), so traffic never passes while a chain is half written.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import FirewallError

CHAIN_PREFIX = "SANDKASTEN-"
_OUR_JUMP = re.compile(r"^-A \S+ (-i \S+|-m owner --uid-owner \d+) -j %s\S+$" % CHAIN_PREFIX)


@dataclass(frozen=True)
class Hook:
    """``chain`` (ours) holding ``rules``, jumped to from the top of ``builtin`` for packets in on ``interface``,
    or (``owner_uid`` set, in OUTPUT) for packets a process of that user sends."""

    builtin: str
    interface: str
    chain: str
    rules: tuple[tuple[str, ...], ...]
    owner_uid: int | None = None

    @property
    def selector(self) -> str:
        """Which packets jump, as iptables-save prints it."""
        if self.owner_uid is not None:
            return "-m owner --uid-owner %d" % self.owner_uid
        return "-i %s" % self.interface

    @property
    def jump(self) -> str:
        """The jump as iptables-save prints it."""
        return "-A %s %s -j %s" % (self.builtin, self.selector, self.chain)


@dataclass(frozen=True)
class Firewall:
    """iptables (``ipv6=False``) or ip6tables, as found on PATH."""

    ipv6: bool = False

    @property
    def command(self) -> str:
        """``iptables`` or ``ip6tables``; the ``-save`` and ``-restore`` tools' names start with it."""
        return "ip6tables" if self.ipv6 else "iptables"

    def available(self) -> bool:
        """Whether the command and its ``-save`` and ``-restore`` tools are all on PATH."""
        return all(shutil.which(self.command + tail) for tail in ("", "-save", "-restore"))

    def ensure(self, hooks: Sequence[Hook]) -> bool:
        """Put ``hooks`` in place unless they already are; True if anything had to be written."""
        with _lock:
            if self._in_place(hooks, self._save()):
                return False
            failure = ""
            for _attempt in range(2):  # a concurrent change (another server) makes a -D fail: read again, retry
                written = self._restore(self._rewrite(hooks, self._save()))
                if written.returncode == 0:
                    break
                failure = written.stderr.strip()
            else:
                raise FirewallError("%s-restore could not set our rules: %s" % (self.command, failure))
            saved = self._save()
            for hook in hooks:
                _written[(self.ipv6, hook.chain)] = (hook.rules, saved.get(hook.chain, []))
            if not self._in_place(hooks, saved):
                raise FirewallError("%s: our rules did not stay at the top of their chains" % self.command)
            return True

    def remove(self, hooks: Sequence[Hook]) -> None:
        """Take ``hooks`` out: jumps deleted, chains flushed and deleted (what is not there is skipped)."""
        with _lock:
            saved = self._save()
            lines = ["*filter"]
            for hook in hooks:
                lines += ["-D %s %s -j %s" % (hook.builtin, hook.selector, hook.chain)] * saved.get(
                    hook.builtin, []
                ).count(hook.jump)
                if hook.chain in saved:
                    lines += [":%s - [0:0]" % hook.chain, "-X %s" % hook.chain]
                _written.pop((self.ipv6, hook.chain), None)
            removed = self._restore([*lines, "COMMIT"])
            if removed.returncode != 0:
                failure = removed.stderr.strip()
                raise FirewallError("%s-restore could not remove our rules: %s" % (self.command, failure))

    def _in_place(self, hooks: Sequence[Hook], saved: dict[str, list[str]]) -> bool:
        for hook in hooks:
            if _written.get((self.ipv6, hook.chain)) != (hook.rules, saved.get(hook.chain)):
                return False
            rules = saved.get(hook.builtin, [])
            leading = []
            for line in rules:
                if not _OUR_JUMP.match(line):
                    break
                leading.append(line)
            if hook.jump not in leading or rules.count(hook.jump) != 1:
                return False
        return True

    def _rewrite(self, hooks: Sequence[Hook], saved: dict[str, list[str]]) -> list[str]:
        """One transaction: each chain flushed (or created) and refilled, each jump deleted and put on top."""
        lines = ["*filter"]
        for hook in hooks:
            lines.append(":%s - [0:0]" % hook.chain)
            lines += ["-A %s %s" % (hook.chain, " ".join(rule)) for rule in hook.rules]
        for hook in hooks:
            lines += ["-D %s %s -j %s" % (hook.builtin, hook.selector, hook.chain)] * saved.get(hook.builtin, []).count(
                hook.jump
            )
            lines.append("-I %s 1 %s -j %s" % (hook.builtin, hook.selector, hook.chain))
        return [*lines, "COMMIT"]

    def _save(self) -> dict[str, list[str]]:
        """The filter table: chain -> its rules, as ``-A`` lines in order (an empty list for an empty chain)."""
        saved = self._run(self.command + "-save", "-t", "filter")
        if saved.returncode != 0:
            raise FirewallError("%s-save failed: %s" % (self.command, saved.stderr.strip() or saved.returncode))
        chains: dict[str, list[str]] = {}
        for line in saved.stdout.splitlines():
            if line.startswith(":"):
                chains.setdefault(line[1:].split()[0], [])
            elif line.startswith("-A "):
                chains.setdefault(line.split()[1], []).append(line)
        return chains

    def _restore(self, lines: list[str]) -> subprocess.CompletedProcess[str]:
        return self._run(self.command + "-restore", "-w", "5", "--noflush", stdin="\n".join(lines) + "\n")

    def _run(self, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FirewallError("%s: %s" % (command[0], exc)) from None


# (ipv6, chain) -> (the rules we wrote, the lines iptables-save printed for them just after).
_written: dict[tuple[bool, str], tuple[tuple[tuple[str, ...], ...], list[str]]] = {}
_lock = threading.Lock()
