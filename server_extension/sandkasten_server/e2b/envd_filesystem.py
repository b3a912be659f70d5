"""envd's ``filesystem.Filesystem`` service on the runner's file ops, which reach the workspace only.

E2B's home, ``/home/user``, is the sandbox's ``/workspace`` (``paths``). The
runner's file ops are confined to it, so any other path is refused up front
with a message saying what works, not with the runner's bare
``path_outside_workspace``. Entries are described as envd describes them
(Go's ``os.FileMode`` bits and string, sizes as int64 strings), since the SDKs
hand them to their users as they come.

Nothing in a sandbox tells the host that its files changed, so a watch polls:
a ``WatchDir`` stream lists the directory every ``POLL_S`` and reports what
differs; the sync SDK's watchers (``CreateWatcher``) keep their last listing and
report the differences when asked (``GetWatcherEvents``). Changes that come
and go between two looks are not seen; a rename shows as one when the entry
kept its size, mode and mtime (``mv`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import posixpath
import re
import secrets
import shlex
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sandkasten_kernel.engine import Engine, RunnerClient, RunnerRequestError, SessionNotFound
from sandkasten_kernel.engine.runner_jobs import ProcessInfo, ProcessOutput

from . import connect_rpc
from .connect_rpc import RpcError
from .paths import E2B_HOME, WORKSPACE, to_e2b, to_sandbox
from .rpc import Message, Rpc, RpcCall, rpc_error

POLL_S = 0.3  # how often a watch looks
OWNER = "user"  # E2B's user: every file here is the sandbox user's
MAX_LIST_ENTRIES = 100_000  # a ListDir larger than this is refused (the SDKs cannot page)
MAX_WATCH_ENTRIES = 2000  # a watch looks at this many entries at most (the first, in walk order)
MAX_DEPTH = 100  # levels a listing or a recursive watch goes down, at most
MAX_WATCHERS = 256  # CreateWatcher's watchers kept, in all; the least recently used go first
MAX_WATCHERS_PER_SANDBOX = 16
MOVE_TIMEOUT_MS = 120_000
KEEPALIVE: Message = {"keepalive": {}}
ENTRY_EVENTS = ("EVENT_TYPE_CREATE", "EVENT_TYPE_WRITE", "EVENT_TYPE_CHMOD")  # the events that carry an entry
_WORKSPACE_WORD = re.compile(r"/workspace(?=/|$|[\s:'\"])")
_RUNNER_TEMP = re.compile(r"\.sk-\d+-[0-9a-f]{8}\.tmp")  # a runner write in progress: not the user's file
_FILE_TYPES = {"file": "FILE_TYPE_FILE", "directory": "FILE_TYPE_DIRECTORY", "symlink": "FILE_TYPE_SYMLINK"}
_GO_TYPE_BITS = {"directory": 1 << 31, "symlink": 1 << 27, "other": 1 << 19}  # ModeDir, ModeSymlink, ModeIrregular
_GO_SPECIAL_BITS = ((0o4000, 1 << 23), (0o2000, 1 << 22), (0o1000, 1 << 20))  # setuid, setgid, sticky
_GO_MODE_LETTERS = "dalTLDpSugct?"  # FileMode.String(): bit 31 first


def workspace_path(path: str) -> str:
    """The sandbox path of an E2B path, normalized; ``invalid_argument`` for one outside the workspace."""
    resolved = posixpath.normpath(to_sandbox(path))
    if resolved != WORKSPACE and not resolved.startswith(WORKSPACE + "/"):
        raise RpcError(
            "invalid_argument",
            "%r is outside what Sandkasten's E2B API reaches: /home/user (the sandbox's /workspace), "
            "the paths under it, and paths relative to it" % path,
        )
    return resolved


def go_mode(kind: str, mode: int) -> int:
    """Go's ``os.FileMode`` for a runner entry's type and permission bits."""
    bits = _GO_TYPE_BITS.get(kind, 0) | (mode & 0o777)
    for unix, go in _GO_SPECIAL_BITS:
        if mode & unix:
            bits |= go
    return bits


def go_mode_string(bits: int) -> str:
    """Go's ``FileMode.String()``: ``drwxr-xr-x``, ``Lrwxrwxrwx``, ``-rw-r--r--``."""
    letters = "".join(letter for i, letter in enumerate(_GO_MODE_LETTERS) if bits & (1 << (31 - i)))
    return (letters or "-") + "".join(c if bits & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))


def _number(value: Any) -> float:
    """A number the runner reported (it is the sandbox's: anything else counts as 0)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def entry_info(entry: Mapping[str, Any], path: str) -> Message:
    """envd's ``EntryInfo`` of the runner's entry (``list``, ``stat``) at sandbox path ``path``."""
    kind = str(entry.get("type"))
    mode = go_mode(kind, int(_number(entry.get("mode"))))
    modified = datetime.datetime.fromtimestamp(_number(entry.get("mtime")), datetime.timezone.utc)
    e2b_path = to_e2b(path)
    info: Message = {
        "name": posixpath.basename(e2b_path),
        "type": _FILE_TYPES.get(kind, "FILE_TYPE_UNSPECIFIED"),
        "path": e2b_path,
        "size": str(int(_number(entry.get("size")))),
        "mode": mode,
        "permissions": go_mode_string(mode),
        "owner": OWNER,
        "group": OWNER,
        "modifiedTime": modified.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    target = entry.get("target")
    if kind == "symlink" and isinstance(target, str):  # envd gives the target as an absolute path
        info["symlinkTarget"] = to_e2b(posixpath.normpath(posixpath.join(posixpath.dirname(path), target)))
    return info


async def described(runner: RunnerClient, path: str) -> Message:
    return entry_info(await runner.stat(path), path)


async def walk(
    runner: RunnerClient, directory: str, depth: int, found: list[tuple[str, dict[str, Any]]], most: int
) -> None:
    """Add (sandbox path, runner entry) of everything under ``directory``, ``depth`` levels down, to ``found``
    until it holds ``most``: depth first, by name, into directories but not through links to them (as envd's
    walk). The directory's own errors are raised; a subdirectory gone meanwhile is passed over."""
    for entry in await runner.list(directory):
        name = entry.get("name")
        if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
            continue
        path = posixpath.join(directory, name)
        found.append((path, entry))
        if len(found) >= most:
            return
        if depth > 1 and entry.get("type") == "directory":
            try:
                await walk(runner, path, depth - 1, found, most)
            except RunnerRequestError as exc:
                if exc.code != "not_found":
                    raise
            if len(found) >= most:
                return


def in_e2b_words(text: str) -> str:
    """A message from the runner, which names the sandbox's paths, with E2B's."""
    return _WORKSPACE_WORD.sub(E2B_HOME, text)


@contextlib.asynccontextmanager
async def files_of(call: RpcCall, touch: bool = True) -> AsyncIterator[RunnerClient]:
    """The sandbox's runner, its refusals as envd's errors in E2B's paths."""
    try:
        async with call.engine.runner(call.record.id, touch=touch) as runner:
            yield runner
    except RunnerRequestError as exc:
        error = rpc_error(exc)
        raise RpcError(error.code, in_e2b_words(error.message)) from None


def _path_of(message: Message, name: str = "path") -> str:
    return workspace_path(connect_rpc.field(message, name, str, ""))


# -- the unary calls ---------------------------------------------------------------------


async def stat(call: RpcCall, message: Message) -> Message:
    path = _path_of(message)
    async with files_of(call) as runner:
        return {"entry": await described(runner, path)}


async def make_dir(call: RpcCall, message: Message) -> Message:
    """``mkdir -p``; an existing directory is ``already_exists`` (the SDK's ``make_dir`` then returns False)."""
    path = _path_of(message)
    async with files_of(call) as runner:
        try:
            existing = await runner.stat(path)
        except RunnerRequestError as exc:
            if exc.code != "not_found":
                raise
        else:
            if existing.get("type") == "directory":
                raise RpcError("already_exists", "directory already exists: %s" % to_e2b(path))
            raise RpcError("invalid_argument", "path already exists but it is not a directory: %s" % to_e2b(path))
        await runner.mkdir(path)
        return {"entry": await described(runner, path)}


async def list_dir(call: RpcCall, message: Message) -> Message:
    path = _path_of(message)
    depth = min(max(1, connect_rpc.field(message, "depth", int, 1)), MAX_DEPTH)
    found: list[tuple[str, dict[str, Any]]] = []
    async with files_of(call) as runner:
        await walk(runner, path, depth, found, MAX_LIST_ENTRIES + 1)
        if len(found) > MAX_LIST_ENTRIES:
            raise RpcError(
                "resource_exhausted", "more than %d entries under %s: list less deep" % (MAX_LIST_ENTRIES, to_e2b(path))
            )
        entries = []
        for child, entry in found:
            if entry.get("type") == "symlink":  # the listing has no link targets: stat has
                with contextlib.suppress(RunnerRequestError):
                    entry = await runner.stat(child)
            entries.append(entry_info(entry, child))
    return {"entries": entries}


async def remove(call: RpcCall, message: Message) -> Message:
    path = _path_of(message)
    async with files_of(call) as runner:
        await runner.remove(path, recursive=True)
    return {}


async def move(call: RpcCall, message: Message) -> Message:
    """envd's rename: the destination's parents made, then ``rename(2)`` (``mv -T``, the runner has no op for it)."""
    source, destination = _path_of(message, "source"), _path_of(message, "destination")
    if WORKSPACE in (source, destination):
        raise RpcError("invalid_argument", "/home/user itself cannot be moved or replaced")
    async with files_of(call) as runner:
        await runner.stat(source)  # not_found, or a source reached through a link out of the workspace
        await runner.mkdir(posixpath.dirname(destination))  # and the destination's parent inside it
        if source != destination:  # rename(2) of a name to itself does nothing; mv would refuse
            await _rename(call, source, destination)
        return {"entry": await described(runner, destination)}


async def _rename(call: RpcCall, source: str, destination: str) -> None:
    command = "mv -T -- %s %s" % (shlex.quote(source), shlex.quote(destination))
    following = call.engine.processes.start_and_follow(
        call.record.id, command, cwd=WORKSPACE, env={"LC_ALL": "C"}, timeout_ms=call.timeout_ms or MOVE_TIMEOUT_MS
    )
    said = bytearray()
    final: ProcessInfo | None = None
    async with contextlib.aclosing(following):
        async for event in following:
            if isinstance(event, ProcessOutput):
                said += event.data[: max(0, 2000 - len(said))]
            else:
                final = event
    if final is not None and not final.running and final.exit_code == 0:
        return
    text = in_e2b_words(said.decode("utf-8", "replace").strip())
    if final is not None and final.timed_out:
        raise RpcError("deadline_exceeded", "renaming %s took too long" % to_e2b(source))
    raise RpcError("not_found" if "No such file" in text else "internal", "error renaming: %s" % (text or "mv failed"))


# -- watching ----------------------------------------------------------------------------

Listing = dict[str, dict[str, Any]]  # runner entries by name relative to the watched directory


def _signature(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (entry.get("type"), entry.get("size"), entry.get("mode"), entry.get("mtime"))


def _written(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    return (entry.get("size"), entry.get("mtime"))


@dataclass(frozen=True)
class Watch:
    """What a watch looks at: a directory (a sandbox path), recursively or not, with entries in events or not."""

    path: str
    recursive: bool
    include_entry: bool

    @classmethod
    def of(cls, message: Message) -> Watch:
        return cls(
            _path_of(message),
            connect_rpc.field(message, "recursive", bool, False),
            connect_rpc.field(message, "includeEntry", bool, False),
        )

    async def look(self, call: RpcCall) -> Listing:
        """The directory's entries now (its own errors raised: not_found, not a directory).
        Looking is not using the sandbox: it does not hold off its idle timeout."""
        found: list[tuple[str, dict[str, Any]]] = []
        async with files_of(call, touch=False) as runner:
            await walk(runner, self.path, MAX_DEPTH if self.recursive else 1, found, MAX_WATCH_ENTRIES)
        return {
            posixpath.relpath(path, self.path): entry
            for path, entry in found
            if not _RUNNER_TEMP.fullmatch(posixpath.basename(path))
        }

    def changes(self, before: Listing, now: Listing) -> list[Message]:
        """envd's events for what differs: RENAME for an entry gone whose twin (same type, size, mode and
        mtime) appeared, else REMOVE; CREATE for a new entry (and WRITE, for a new file with data that is no
        twin); WRITE for a file whose size or mtime changed, CHMOD for a mode that did."""
        gone = [name for name in before if name not in now or before[name].get("type") != now[name].get("type")]
        new = [name for name in now if name not in before or before[name].get("type") != now[name].get("type")]
        twins: dict[tuple[Any, ...], list[str]] = {}
        for name in new:
            twins.setdefault(_signature(now[name]), []).append(name)
        events: list[tuple[str, str]] = []
        moved_here = set()
        for name in gone:
            found = twins.get(_signature(before[name]))
            if found:
                moved_here.add(found.pop(0))
                events.append((name, "EVENT_TYPE_RENAME"))
            else:
                events.append((name, "EVENT_TYPE_REMOVE"))
        for name in new:
            events.append((name, "EVENT_TYPE_CREATE"))
            if name not in moved_here and now[name].get("type") == "file" and now[name].get("size"):
                events.append((name, "EVENT_TYPE_WRITE"))
        for name, entry in now.items():
            old = before.get(name)
            if old is None or old.get("type") != entry.get("type"):
                continue
            if entry.get("type") != "directory" and _written(old) != _written(entry):
                events.append((name, "EVENT_TYPE_WRITE"))
            if old.get("mode") != entry.get("mode"):
                events.append((name, "EVENT_TYPE_CHMOD"))
        return [self._event(name, kind, now) for name, kind in events]

    def _event(self, name: str, kind: str, now: Listing) -> Message:
        event: Message = {"name": name, "type": kind}
        if self.include_entry and kind in ENTRY_EVENTS and name in now:
            event["entry"] = entry_info(now[name], posixpath.join(self.path, name))
        return event


async def watch_dir(call: RpcCall, message: Message) -> AsyncGenerator[Message, None]:
    """``start`` once the directory is found, then its changes as polling sees them, until the client's deadline."""
    watch = Watch.of(message)
    seen = await watch.look(call)
    yield {"start": {}}
    while True:
        await asyncio.sleep(POLL_S)
        now = await watch.look(call)
        for event in watch.changes(seen, now):
            yield {"filesystem": event}
        seen = now


@dataclass
class Watcher:
    session_id: str
    watch: Watch
    seen: Listing
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Watchers:
    """The sync SDK's watchers by id, each with its last listing: held in memory, bounded in number
    (the least recently used go first: SDK users often never stop theirs); those of sandboxes that
    have ended are let go whenever a watcher is made."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Watcher] = OrderedDict()

    def add(self, engine: Engine, watcher: Watcher) -> str:
        self._drop_ended(engine)
        same = [key for key, held in self._by_id.items() if held.session_id == watcher.session_id]
        for key in same[: max(0, len(same) - MAX_WATCHERS_PER_SANDBOX + 1)]:
            del self._by_id[key]
        while len(self._by_id) >= MAX_WATCHERS:
            self._by_id.popitem(last=False)
        watcher_id = "w" + secrets.token_hex(12)
        self._by_id[watcher_id] = watcher
        return watcher_id

    def get(self, session_id: str, watcher_id: str) -> Watcher:
        """The sandbox's watcher (another sandbox's is not found either)."""
        watcher = self._by_id.get(watcher_id)
        if watcher is None or watcher.session_id != session_id:
            raise RpcError("not_found", "watcher with id %s not found" % watcher_id)
        self._by_id.move_to_end(watcher_id)
        return watcher

    def remove(self, session_id: str, watcher_id: str) -> None:
        self.get(session_id, watcher_id)
        del self._by_id[watcher_id]

    def _drop_ended(self, engine: Engine) -> None:
        ended = set()
        for session_id in {held.session_id for held in self._by_id.values()}:
            try:
                engine.get_session(session_id)
            except SessionNotFound:
                ended.add(session_id)
        for key in [key for key, held in self._by_id.items() if held.session_id in ended]:
            del self._by_id[key]


def watchers(call: RpcCall) -> Watchers:
    """The server's watchers (one registry per application)."""
    held: Watchers = call.handler.settings.setdefault("sandkasten_e2b_watchers", Watchers())
    return held


async def create_watcher(call: RpcCall, message: Message) -> Message:
    watch = Watch.of(message)
    watcher = Watcher(call.record.id, watch, await watch.look(call))
    return {"watcherId": watchers(call).add(call.engine, watcher)}


async def get_watcher_events(call: RpcCall, message: Message) -> Message:
    watcher = watchers(call).get(call.record.id, connect_rpc.field(message, "watcherId", str, ""))
    async with watcher.lock:
        now = await watcher.watch.look(call)
        events = watcher.watch.changes(watcher.seen, now)
        watcher.seen = now
    return {"events": events}


async def remove_watcher(call: RpcCall, message: Message) -> Message:
    watchers(call).remove(call.record.id, connect_rpc.field(message, "watcherId", str, ""))
    return {}


RPCS: dict[str, Rpc] = {
    "filesystem.Filesystem/Stat": Rpc("unary", stat),
    "filesystem.Filesystem/MakeDir": Rpc("unary", make_dir),
    "filesystem.Filesystem/Move": Rpc("unary", move),
    "filesystem.Filesystem/ListDir": Rpc("unary", list_dir),
    "filesystem.Filesystem/Remove": Rpc("unary", remove),
    "filesystem.Filesystem/WatchDir": Rpc("server", watch_dir, KEEPALIVE),
    "filesystem.Filesystem/CreateWatcher": Rpc("unary", create_watcher),
    "filesystem.Filesystem/GetWatcherEvents": Rpc("unary", get_watcher_events),
    "filesystem.Filesystem/RemoveWatcher": Rpc("unary", remove_watcher),
}
