"""The code interpreter's routes on port 49999: ``/execute`` and the code contexts.

As E2B's code-interpreter server answers: ``/execute`` streams NDJSON lines
(``code_lines``, ``code_execution``) and its errors before the stream are
plain text with the status, which the SDKs show as they are (404
``Context <id> not found``). Only Python runs here: the sandbox's kernel is
ipykernel, so a language other than Python is a 400 that says so.

The default context is the session's kernel (``code_contexts``), and each
context made with ``POST /contexts`` a kernel of its own in the same sandbox
(``context_kernels``): its own variables, the same files. A kernel's env is
the session's (``envVars`` at create): a warm sandbox's kernel started before
the session had one, so the first execution of each kernel sets it, and moves
a new context's kernel to its ``cwd``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from tornado.iostream import StreamClosedError

from sandkasten_kernel.engine import EngineError, SessionRecord

from ..errors import ApiError
from . import context_kernels
from .base import E2BError, status_and_message
from .code_contexts import Context, SandboxContexts, contexts_of
from .code_execution import Execution
from .code_lines import encode, env_prelude
from .paths import E2B_HOME
from .rpc import INTERPRETER_PORT, Route, route

LANGUAGES = ("python",)
NDJSON = "application/x-ndjson"
Answer = Callable[..., Awaitable[None]]


def plain_text_errors(answer: Answer) -> Answer:
    """Errors before the answer starts as plain text with their status, as E2B's server gives them."""

    @functools.wraps(answer)
    async def answering(handler: Any, *groups: str) -> None:
        try:
            await answer(handler, *groups)
        except (E2BError, EngineError, ApiError) as exc:
            if handler._headers_written:
                raise
            status, message = status_and_message(exc, 500, "failed")
            handler.clear()
            handler.set_status(status)
            handler.set_header("Content-Type", "text/plain; charset=utf-8")
            handler.finish(message)

    return answering


def json_reply(handler: Any, data: Any) -> None:
    handler.set_header("Content-Type", "application/json")
    handler.finish(json.dumps(data))


def request_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except ValueError as exc:
        raise E2BError(400, "the body is not valid JSON: %s" % exc) from None
    if not isinstance(data, dict):
        raise E2BError(400, "the body must be a JSON object")
    return data


def optional_string(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise E2BError(400, "%s must be a string" % name)
    return value or None


def checked_language(language: str | None) -> str:
    """The language, which must be Python (E2B's default)."""
    normalized = (language or "python").strip().lower()
    if normalized not in LANGUAGES:
        supported = ", ".join(LANGUAGES)
        raise E2BError(400, "language %r is not supported: the code interpreter runs %s" % (language, supported))
    return normalized


async def sandbox_contexts(handler: Any) -> tuple[SessionRecord, SandboxContexts]:
    """The sandbox's record and contexts, its default context's kernel started if it was not."""
    engine, kernels = handler.engine, handler.service.kernels
    record: SessionRecord = handler.record
    engine.require_running(record.id)  # a frozen kernel would not answer
    engine.require_kernel(record.id)
    contexts = contexts_of(handler.settings, record, lambda: {r.id for r in engine.list_sessions()})
    async with contexts.starting:  # two first calls at once must not start two kernels
        kernel_id = kernels.running(record) or await kernels.ensure(record)
    record = engine.get_session(record.id)  # with the kernel's id now
    contexts.default_for(kernels, kernel_id)
    return record, contexts


def context_named(contexts: SandboxContexts, context_id: str) -> Context:
    context = contexts.find(context_id)
    if context is None:
        raise E2BError(404, "Context %s not found" % context_id)
    return context


async def health(handler: Any) -> None:
    json_reply(handler, "OK")


@plain_text_errors
async def execute(handler: Any) -> None:
    """``POST /execute {code, context_id, language, env_vars}``: the code's lines as NDJSON."""
    data = request_object(handler.body)
    code = data.get("code")
    if not isinstance(code, str):
        raise E2BError(400, "code must be a string")
    context_id, language = optional_string(data, "context_id"), optional_string(data, "language")
    if context_id and language:
        raise E2BError(400, "Only one of context_id or language can be provided")
    checked_language(language)
    env_vars = data.get("env_vars") or {}
    if not isinstance(env_vars, dict) or not all(isinstance(v, str) for v in env_vars.values()):
        raise E2BError(400, "env_vars must map names to strings")
    record, contexts = await sandbox_contexts(handler)
    context = context_named(contexts, context_id) if context_id else contexts.default
    assert context is not None
    if env_vars:
        code = env_prelude(env_vars, code)
    handler.engine.touch(record.id)
    handler.set_header("Content-Type", NDJSON)

    async def send(line: dict[str, Any]) -> None:
        handler.write(encode(line))
        await handler.flush()

    try:
        await handler.flush()  # the headers now: E2B's JavaScript client times out until they come
        await Execution(context, record, code).stream(send)
    except StreamClosedError:
        return  # the client left (``Execution.abandon``)
    handler.finish()


@plain_text_errors
async def create_context(handler: Any) -> None:
    """``POST /contexts {language, cwd}``: a new context, a kernel of its own in the sandbox."""
    data = request_object(handler.body)
    checked_language(optional_string(data, "language"))
    cwd = optional_string(data, "cwd") or E2B_HOME
    record, contexts = await sandbox_contexts(handler)
    context = await context_kernels.create_context(handler, record, contexts, cwd)
    json_reply(handler, context.as_json())


@plain_text_errors
async def list_contexts(handler: Any) -> None:
    _, contexts = await sandbox_contexts(handler)
    json_reply(handler, [context.as_json() for context in contexts.all()])


@plain_text_errors
async def remove_context(handler: Any, context_id: str) -> None:
    _, contexts = await sandbox_contexts(handler)
    context = context_named(contexts, context_id)
    if not isinstance(context, context_kernels.KernelContext):
        raise E2BError(
            400, "Context %s is the sandbox's default context: it cannot be removed (restart it instead)" % context_id
        )
    del contexts.extra[context.id]
    await context.remove()
    json_reply(handler, None)


@plain_text_errors
async def restart_context(handler: Any, context_id: str) -> None:
    _, contexts = await sandbox_contexts(handler)
    await context_named(contexts, context_id).restart()
    json_reply(handler, None)


ROUTES: list[Route] = [
    route(INTERPRETER_PORT, "GET", "health", health),
    route(INTERPRETER_PORT, "POST", "execute", execute),
    route(INTERPRETER_PORT, "POST", "contexts", create_context),
    route(INTERPRETER_PORT, "GET", "contexts", list_contexts),
    route(INTERPRETER_PORT, "DELETE", r"contexts/([^/]+)", remove_context),
    route(INTERPRETER_PORT, "POST", r"contexts/([^/]+)/restart", restart_context),
]
