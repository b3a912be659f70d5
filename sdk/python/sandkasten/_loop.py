"""The event loop the synchronous client drives the asynchronous one on, in a daemon thread of its own."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread: ``run`` a coroutine on it, or ``iterate`` an async iterable."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sandkasten-sync", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and block until it is done; its result, or its exception raised."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result()

    def iterate(self, iterable: AsyncIterable[T]) -> Iterator[T]:
        """The items of ``iterable``, each taken on the loop."""
        items = iterable.__aiter__()

        async def next_item() -> T:
            return await items.__anext__()

        while True:
            try:
                yield self.run(next_item())
            except StopAsyncIteration:
                return

    def stop(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
