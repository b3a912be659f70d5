"""Bytes and items handed between the event loop and one worker thread, bounded both ways.

Work on untrusted input (decompressing and parsing an uploaded archive) runs in
a thread of its own so the event loop keeps answering everyone else. The body
flows in as it arrives (``BodyPipe``: the loop writes, the thread reads it like
a file) and results flow back (``Mailbox``: the thread puts, the loop gets).
Each side waits when the other is behind, so neither holds more than its bound
in memory; the loop side waits with ``await``, never by blocking. Either end
can give up: the other side then stops waiting and learns it with ``Abandoned``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Abandoned(Exception):
    """The other side gave up: nothing more will be read or written."""


class BodyPipe:
    """Loop -> thread bytes; the thread's ``read(n)`` returns ``n`` bytes unless the body ended."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._ended = False  # the loop wrote everything
        self._abandoned = False  # the loop gave up
        self._reader_done = False  # the thread will read no more
        self._lock = threading.Condition()
        self._room = asyncio.Event()

    async def write(self, data: bytes) -> None:
        """Hand ``data`` over, waiting while ``limit`` bytes are unread; dropped once the reader is done."""
        while True:
            with self._lock:
                if self._reader_done or not data:
                    return
                if self._size < self._limit:
                    self._chunks.append(data)
                    self._size += len(data)
                    self._lock.notify()
                    return
                self._room.clear()  # under the lock: the reader's wake-up comes after this
            await self._room.wait()

    def end(self) -> None:
        """The body is complete: the reader gets the rest, then EOF."""
        with self._lock:
            self._ended = True
            self._lock.notify()

    def abandon(self) -> None:
        """The loop gives up: a waiting reader raises ``Abandoned``."""
        with self._lock:
            self._abandoned = True
            self._lock.notify()

    def close_reader(self) -> None:
        """The thread reads no more: the loop's writes are dropped from now on (and none waits)."""
        with self._lock:
            self._reader_done = True
            self._chunks.clear()
            self._size = 0
        self._loop.call_soon_threadsafe(self._room.set)

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all, if negative), fewer only at the end of the body. Blocks: thread side only."""
        parts: list[bytes] = []
        wanted = n if n >= 0 else 1 << 62
        with self._lock:
            while wanted > 0:
                while not self._chunks and not self._ended and not self._abandoned:
                    self._lock.wait()
                if self._abandoned:
                    raise Abandoned("the upload was abandoned")
                if not self._chunks:
                    break  # ended
                chunk = self._chunks.popleft()
                if len(chunk) > wanted:
                    self._chunks.appendleft(chunk[wanted:])
                    chunk = chunk[:wanted]
                parts.append(chunk)
                wanted -= len(chunk)
                self._size -= len(chunk)
                self._loop.call_soon_threadsafe(self._room.set)
        return b"".join(parts)


class Mailbox(Generic[T]):
    """Thread -> loop items, each with a weight in bytes; ``put`` blocks while ``limit`` bytes are untaken."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self._loop = loop
        self._limit = limit
        self._items: collections.deque[tuple[T, int]] = collections.deque()
        self._weight = 0
        self._abandoned = False
        self._lock = threading.Condition()
        self._ready = asyncio.Event()

    def put(self, item: T, weight: int = 0) -> None:
        """Thread side: hand ``item`` over; raises ``Abandoned`` if the loop gave up."""
        with self._lock:
            while self._weight >= self._limit and not self._abandoned:
                self._lock.wait()
            if self._abandoned:
                raise Abandoned("the upload was abandoned")
            self._items.append((item, weight))
            self._weight += weight
        self._loop.call_soon_threadsafe(self._ready.set)

    async def get(self) -> T:
        """Loop side: the next item, waiting for it without blocking the loop; ``Abandoned`` once abandoned."""
        while True:
            with self._lock:
                if self._abandoned:
                    raise Abandoned("the upload was abandoned")
                if self._items:
                    item, weight = self._items.popleft()
                    self._weight -= weight
                    self._lock.notify()
                    return item
                self._ready.clear()  # under the lock: the thread's wake-up comes after this
            await self._ready.wait()

    def abandon(self) -> None:
        """The loop gives up: a waiting ``put`` raises ``Abandoned``, and what was put is dropped."""
        with self._lock:
            self._abandoned = True
            self._items.clear()
            self._weight = 0
            self._lock.notify_all()
        self._loop.call_soon_threadsafe(self._ready.set)  # a waiting get() raises
