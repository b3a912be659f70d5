"""Sending a ``Call`` over httpx: JSON replies, NDJSON event streams, and the retries ``_calls`` allows."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

import httpx

from . import _calls
from ._calls import Call, RetryPolicy
from ._exceptions import SandkastenConnectionError


class Transport:
    """One client's connections to the server, and the tasks that follow processes through them."""

    def __init__(
        self, base_url: str, api_key: str, timeout: float, http: httpx.AsyncClient | None, retry: RetryPolicy
    ) -> None:
        self.http = http or httpx.AsyncClient(**_calls.client_options(base_url, api_key, timeout))
        self.timeout = timeout
        self.retry = retry
        self._tasks: set[asyncio.Task[Any]] = set()

    async def send(self, call: Call) -> Any:
        """The reply's JSON (None when empty); raw bytes for non-JSON replies. An error reply raises."""
        retries, waited = 0, 0.0
        while True:
            response, body = await self._attempt(call)
            if response.status_code < 400:
                break
            delay = self._retry_delay(call, response, body, retries, waited)
            retries, waited = retries + 1, waited + delay
            await asyncio.sleep(delay)
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(body)
        return body

    def _retry_delay(self, call: Call, response: httpx.Response, body: bytes, retries: int, waited: float) -> float:
        """For an error reply: the seconds to wait before sending ``call`` again, where the policy retries it;
        else the reply's error is raised."""
        error = _calls.error_for(response.status_code, body)
        delay = self.retry.delay(response.status_code, response.headers.get("Retry-After"), retries, waited)
        if delay is None or not _calls.may_resend(call.method, error.code):
            raise error
        return delay

    async def _attempt(self, call: Call) -> tuple[httpx.Response, bytes]:
        """One request, sent again after a connection error where that is safe (``Call.retryable``)."""
        delays = _calls.RETRY_DELAYS_S if call.retryable else ()
        for attempt in range(len(delays) + 1):
            try:
                async with self.http.stream(call.method, call.path, **_calls.request_options(call)) as response:
                    return response, await _calls.read_body(response)
            except httpx.TransportError as exc:
                if attempt == len(delays):
                    raise SandkastenConnectionError(
                        "cannot reach the Sandkasten server: %s" % (exc or type(exc).__name__)
                    ) from exc
                await asyncio.sleep(delays[attempt])
        raise AssertionError("unreachable")

    async def events(self, call: Call) -> AsyncGenerator[dict[str, Any], None]:
        """The events of a streamed reply, one per NDJSON line; an ``error`` event raises.

        A stream has no read timeout: a command or process may be silent for long. A refusal with
        ``Retry-After`` before the stream begins is retried as ``send`` retries it.
        """
        options = {**_calls.request_options(call), "timeout": httpx.Timeout(self.timeout, connect=10.0, read=None)}
        retries, waited = 0, 0.0
        try:
            while True:
                async with self.http.stream(call.method, call.path, **options) as response:
                    if response.status_code < 400:
                        async for line in response.aiter_lines():
                            event = _calls.stream_event(line.encode())
                            if event is not None:
                                yield event
                        return
                    delay = self._retry_delay(call, response, await response.aread(), retries, waited)
                retries, waited = retries + 1, waited + delay
                await asyncio.sleep(delay)
        except httpx.TransportError as exc:
            raise SandkastenConnectionError("the stream from the Sandkasten server broke: %s" % exc) from exc

    def background(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coroutine`` as a task of this client: ``close`` cancels it if it is still running."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        """Cancel the client's tasks, then close its connections."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.http.aclose()
