"""``sessions``: create, list, get, destroy, pause, resume; and ``run_code`` on a session's kernel."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from sandkasten_kernel.engine import Engine, EngineError, SessionNotFound, SessionRecord

from ..errors import ApiError
from ..session_kernels import DEFAULT_MAX_OUTPUT, SessionKernels
from ..streaming import EventStream
from .base import SandkastenHandler

DEFAULT_CODE_TIMEOUT_MS = 60_000


def session_json(record: SessionRecord, kernels: SessionKernels) -> dict[str, Any]:
    data = record.public()
    data["kernel"] = kernels.model(record)
    return data


async def usage_or_none(engine: Engine, session_id: str) -> dict[str, Any] | None:
    """The sandbox's usage; None when it cannot be read right now (the session is going away, say)."""
    try:
        return await engine.usage(session_id)
    except EngineError:
        return None


class SessionsHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        kernels = self.service.kernels
        records = [r for r in self.engine.list_sessions() if self.may_see(r)]
        sessions = [session_json(r, kernels) for r in records]
        with_usage = self.get_query_argument("usage", "false")
        if with_usage not in ("true", "false"):
            raise ApiError(400, "bad_request", "query 'usage' must be true or false")
        if with_usage == "true":  # the dashboard's CPU and memory columns
            usages = await asyncio.gather(*(usage_or_none(self.engine, r.id) for r in records))
            for session, usage in zip(sessions, usages, strict=True):
                session["usage"] = usage
        self.reply({"sessions": sessions})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body("SessionCreate", required=False)
        if body.get("with_kernel"):
            self.engine.require_kernel(image=body.get("image"))
        record = await self.engine.create_session(
            image=body.get("image"),
            workspace=body.get("workspace"),
            env=body.get("env"),
            limits=body.get("limits"),
            network=body.get("network"),
            ttl_s=body.get("ttl_s"),
            owner=self.owner,
            workspace_owner=self.workspace_owner,
            wants_kernel=bool(body.get("with_kernel") or body.get("warm_kernel")),
            snapshot=body.get("snapshot"),
            labels=body.get("labels"),
            idle_timeout_s=body.get("idle_timeout_s"),
        )
        if body.get("with_kernel"):
            try:
                await self.service.kernels.ensure(record)
            except BaseException:
                await self.engine.destroy_session(record.id, "its kernel did not start")
                raise
            record = self.engine.get_session(record.id)
        self.reply(session_json(record, self.service.kernels), 201)


class SessionHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        self.engine.note_egress_refusals()  # the count of refused connections, up to this moment
        self.reply(session_json(self.session_record(session_id), self.service.kernels))

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        record = self.session_record(session_id)
        self.service.kernels.let_go(record)  # in the background: the caller never waits on a kernel's shutdown
        with contextlib.suppress(SessionNotFound):  # destroyed meanwhile
            await self.engine.destroy_session(record.id, "destroyed through the API")
        self.set_status(204)
        self.finish()


class SessionPauseHandler(SandkastenHandler):
    """``POST sessions/{id}/pause``; the resume's handler is this one with another ``act``."""

    async def act(self, session_id: str) -> SessionRecord:
        return await self.engine.pause_session(session_id)

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = await self.act(self.session_record(session_id).id)
        self.reply(session_json(record, self.service.kernels))


class SessionResumeHandler(SessionPauseHandler):
    async def act(self, session_id: str) -> SessionRecord:
        return await self.engine.resume_session(session_id)


class RunCodeHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("CodeRequest")
        timeout_s = body.get("timeout_ms", DEFAULT_CODE_TIMEOUT_MS) / 1000
        max_output = int(body.get("max_output", DEFAULT_MAX_OUTPUT))  # JSON Schema's integers include 5.0
        kernels = self.service.kernels
        self.engine.require_running(record.id)  # a frozen kernel would not answer before the timeout
        self.engine.require_kernel(record.id)  # before Jupyter's kernel manager is asked for one
        self.engine.touch(record.id)
        if not body.get("stream"):
            result = await kernels.run(record, body["code"], timeout_s, max_output=max_output)
            self.reply(result.as_json())
            return
        stream = EventStream(self)

        async def run_and_send() -> None:
            result = await kernels.run(record, body["code"], timeout_s, emit=stream.send, max_output=max_output)
            await stream.send({"type": "done", **result.as_json()})

        await stream.complete(run_and_send())
