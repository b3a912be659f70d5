"""Server-wide routes: workspaces, images, pool, config, health, events, and the OpenAPI document.

Workspaces belong to their users like sessions do: a user lists and deletes their own,
an admin everyone's; another user's workspace is answered as if it did not exist.
"""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from sandkasten_kernel.engine import EngineError, WorkspaceNotFound

from .. import config_edit
from ..errors import ApiError
from ..schema import openapi
from .base import SandkastenHandler

MAX_EVENTS = 1000


class WorkspacesHandler(SandkastenHandler):
    """The caller's workspaces (an admin's: everyone's, each with its owner)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        rows = await self.engine.list_workspaces()
        if not self.is_admin:
            mine = self.workspace_owner
            own_sessions = {r.id for r in self.engine.list_sessions() if r.owner == self.owner}
            rows = [row for row in rows if row["owner"] == mine]
            for row in rows:
                row["in_use_by"] = [s for s in row["in_use_by"] if s in own_sessions]
        self.reply({"workspaces": rows})


class WorkspaceHandler(SandkastenHandler):
    """Delete a workspace: the caller's own, or with ``?owner=`` (admins only) anyone's;
    ``owner=`` empty names the server's own (listed with owner null)."""

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        asked = self.get_query_argument("owner", None)
        owner = self.workspace_owner if asked is None else (asked or None)
        if owner != self.workspace_owner and not self.is_admin:
            raise WorkspaceNotFound("no workspace %r" % name)  # another user's is as if absent
        await self.engine.delete_workspace(name, owner)
        self.set_status(204)
        self.finish()


class ImagesHandler(SandkastenHandler):
    """The built-in and added images, as the pool and config are: anyone may look. Images are added on the
    host (``sandkasten images add``): a build runs its Dockerfile as root, outside any sandbox."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"images": await self.engine.list_images(), "admin": self.is_admin})


class ImageHandler(SandkastenHandler):
    """Remove an added image (admins only; refused while a session or the warm pool uses it)."""

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        self.require_admin()
        await self.engine.remove_image(name)
        self.set_status(204)
        self.finish()


class PoolHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(self.engine.pool_status())

    @web.authenticated
    @authorized
    async def put(self) -> None:
        self.require_admin()
        body = self.json_body("PoolTargets")
        engine = self.engine
        for image in body["images"]:
            engine.settings.resolve_image(image)  # every name is checked before anything changes
        for image, target in body["images"].items():
            await engine.resize_pool(image, target)
        self.reply(engine.pool_status())


class ConfigHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.service.config_path
        self.reply(
            {
                "path": path,
                "writable": path is not None and self.is_admin,
                "config": config_edit.effective(self.service.settings),
            }
        )

    @web.authenticated
    @authorized
    async def put(self) -> None:
        self.require_admin()
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise ApiError(400, "bad_request", "the body is not valid JSON: %s" % exc) from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "the body must be a JSON object in the shape of sandkasten.yaml")
        service = self.service
        self.reply(await config_edit.change(service.config_path, service.settings, service.engine, body))


class HealthHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        service = self.service
        report: dict[str, Any] = {"engine": {"ok": service.engine is not None, "error": service.problem}}
        if service.engine is not None:
            engine = service.engine
            try:
                version = await engine.docker_version()
                report["docker"] = {"ok": True, "version": version.get("Version"), "api": version.get("ApiVersion")}
            except EngineError as exc:
                report["docker"] = {"ok": False, "error": str(exc)}
            try:
                report["store"] = {"ok": True, "sessions": len(engine.list_sessions())}
            except EngineError as exc:
                report["store"] = {"ok": False, "error": str(exc)}
            pool = engine.pool_status()
            report["pool"] = {
                "ok": True,
                "enabled": pool["enabled"],
                "images": {image: {"target": s["target"], "ready": s["ready"]} for image, s in pool["images"].items()},
            }
        healthy = all(part.get("ok") for part in report.values())
        report["status"] = "ok" if healthy else "unavailable"
        self.reply(report, 200 if healthy else 503)


class EventsHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        text = self.get_query_argument("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= MAX_EVENTS:
            raise ApiError(400, "bad_request", "query 'limit' must be a whole number from 1 to %d" % MAX_EVENTS)
        session_id = self.get_query_argument("session_id", None)
        engine = self.engine
        if session_id is not None and not self.is_admin:
            self.session_record(session_id)  # users see their own live sessions' events only
        events = engine.events(int(text), session_id)
        if not self.is_admin:
            mine = {r.id for r in engine.list_sessions() if r.owner == self.owner}
            events = [e for e in events if e.session_id in mine]
        self.reply({"events": [vars(e) for e in events]})


class NoRouteHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        raise ApiError(404, "not_found", "no such route: %s (see /sandkasten/api/openapi.json)" % self.request.path)

    post = put = delete = patch = get


class OpenAPIHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(openapi())
