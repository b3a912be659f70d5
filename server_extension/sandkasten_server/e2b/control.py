"""E2B's control plane at ``/e2b``: create, connect, list, get, timeout, pause, kill and metrics.

A sandbox is a Sandkasten session of the caller's. Its E2B ``timeout`` is the
session's ttl (moved by ``set_timeout`` and ``connect``), and it does not idle
out before it. E2B's ``metadata`` are the session's labels; its ``envVars``
the session's environment; a template is an image (``TEMPLATES``).
"""

from __future__ import annotations

import datetime
import json
import time
import urllib.parse
from typing import Any

from sandkasten_kernel.engine import SessionNotFound, SessionPaused, SessionRecord

from .base import ENVD_VERSION, E2BError, E2BHandler
from .tokens import SandboxTokens

# E2B's template names and the images they are here; any other name must be an image's.
TEMPLATES = {"base": "python", "code-interpreter-v1": "python"}
WITH_KERNEL = {"code-interpreter-v1"}  # templates whose sandboxes run code first thing: a warm kernel
DEFAULT_TIMEOUT_S = 300
# Parts of a create that have no meaning here: refused rather than ignored.
UNSUPPORTED_CREATE = ("mcp", "network", "volumeMounts", "autoResume", "iam")
LIST_LIMIT = 100


def rfc3339(moment: float) -> str:
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def end_of(record: SessionRecord) -> float:
    """When the reaper ends the session (its ttl, time paused not counted)."""
    paused_now = time.time() - record.paused_at if record.paused_at is not None else 0.0
    return record.created_at + record.paused_s + paused_now + record.ttl_s


class ControlHandler(E2BHandler):
    """A control-plane call: the caller is known and allowed; the sandbox, if named, is theirs."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        await self.require_caller()

    @property
    def tokens(self) -> SandboxTokens:
        tokens: SandboxTokens = self.settings["sandkasten_e2b_tokens"]
        return tokens

    def sandbox(self, sandbox_id: str) -> SessionRecord:
        try:
            return self.session_record(sandbox_id)
        except SessionNotFound:
            raise E2BError(404, "sandbox \"%s\" doesn't exist or you don't have access to it" % sandbox_id) from None

    def sandbox_json(self, record: SessionRecord) -> dict[str, Any]:
        """The ``Sandbox`` that create and connect answer with."""
        token = self.tokens.token(record.id)
        return {
            "templateID": self.template_of(record),
            "sandboxID": record.id,
            "clientID": "sandkasten",
            "envdVersion": ENVD_VERSION,
            "envdAccessToken": token,
            "trafficAccessToken": token,
            "domain": None,
        }

    def detail_json(self, record: SessionRecord) -> dict[str, Any]:
        """The ``SandboxDetail`` (and ``ListedSandbox``) of a session."""
        limits = record.limits
        return {
            "templateID": self.template_of(record),
            "sandboxID": record.id,
            "clientID": "sandkasten",
            "startedAt": rfc3339(record.created_at),
            "endAt": rfc3339(end_of(record)),
            "envdVersion": ENVD_VERSION,
            "cpuCount": max(1, int(limits.get("cpus") or 1)),
            "memoryMB": int(limits.get("memory_mb") or 0),
            "diskSizeMB": int(limits.get("workspace_mb") or limits.get("tmp_mb") or 0),
            "state": "paused" if record.status == "paused" else "running",
            "metadata": record.labels,
        }

    def template_of(self, record: SessionRecord) -> str:
        return self.engine.settings.short_image_name(record.image)

    def json_object(self) -> dict[str, Any]:
        if not self.request.body.strip():
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError as exc:
            raise E2BError(400, "the body is not valid JSON: %s" % exc) from None
        if not isinstance(body, dict):
            raise E2BError(400, "the body must be a JSON object")
        return body


def string_map(body: dict[str, Any], name: str) -> dict[str, str]:
    value = body.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise E2BError(400, "%s must map names to strings" % name)
    return value


def seconds(body: dict[str, Any], name: str, default: int | None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise E2BError(400, "%s must be a whole number of seconds" % name)
    return value


class SandboxesHandler(ControlHandler):
    """``POST /sandboxes`` and ``/v2/sandboxes``: create; ``GET``: the caller's sandboxes."""

    async def post(self, version: str | None = None) -> None:
        body = self.json_object()
        template = body.get("templateID") or "base"
        if not isinstance(template, str):
            raise E2BError(400, "templateID must be a string")
        image = TEMPLATES.get(template, template)
        if image not in self.engine.settings.sandbox_image_names():
            raise E2BError(404, "template '%s' not found: use base, code-interpreter-v1 or an image's name" % template)
        if body.get("autoPause"):
            raise E2BError(400, "autoPause is not supported: pause with Sandbox.pause(), resume with connect")
        for name in UNSUPPORTED_CREATE:
            if body.get(name):
                raise E2BError(400, "%s is not supported by Sandkasten's E2B API (docs/e2b.md)" % name)
        timeout = seconds(body, "timeout", DEFAULT_TIMEOUT_S) or DEFAULT_TIMEOUT_S
        network = body.get("allow_internet_access")
        if network is not None and not isinstance(network, bool):
            raise E2BError(400, "allow_internet_access must be true or false")
        record = await self.engine.create_session(
            image=image,
            env=string_map(body, "envVars"),
            network=network,
            ttl_s=timeout,
            owner=self.owner,
            workspace_owner=self.workspace_owner,
            wants_kernel=template in WITH_KERNEL,
            labels=string_map(body, "metadata"),
            idle_timeout_s=0,
        )
        self.reply(self.sandbox_json(record), 201)

    async def get(self, version: str | None = None) -> None:
        records = [r for r in self.engine.list_sessions() if r.owner == self.owner]
        wanted = metadata_filter(self.get_query_argument("metadata", ""))
        records = [r for r in records if all(r.labels.get(k) == v for k, v in wanted.items())]
        states = {s for s in self.get_query_argument("state", "").split(",") if s}
        if states:
            records = [r for r in records if ("paused" if r.status == "paused" else "running") in states]
        if self.get_query_argument("order", "asc") == "desc":
            records.reverse()
        start = 0
        cursor = self.get_query_argument("nextToken", "")
        if cursor:
            ids = [r.id for r in records]
            start = ids.index(cursor) + 1 if cursor in ids else len(ids)
        limit = self.get_query_argument("limit", "")
        count = int(limit) if limit.isdigit() and int(limit) > 0 else LIST_LIMIT
        page = records[start : start + count]
        if version and start + count < len(records):
            self.set_header("x-next-token", page[-1].id)
        self.reply([self.detail_json(record) for record in page])


def metadata_filter(encoded: str) -> dict[str, str]:
    """The ``metadata`` query of a list: ``k=v&k2=v2`` with each key and value percent-encoded again."""
    pairs = urllib.parse.parse_qsl(encoded, keep_blank_values=True)
    return {urllib.parse.unquote(key): urllib.parse.unquote(value) for key, value in pairs}


class SandboxHandler(ControlHandler):
    """``GET /sandboxes/{id}``: its detail; ``DELETE``: kill it."""

    async def get(self, sandbox_id: str) -> None:
        self.reply(self.detail_json(self.sandbox(sandbox_id)))

    async def delete(self, sandbox_id: str) -> None:
        record = self.sandbox(sandbox_id)
        self.service.kernels.let_go(record)  # as the REST delete: else Jupyter's restarter brings it back
        await self.engine.destroy_session(record.id, "killed through the E2B API")
        self.set_status(204)
        self.finish()


class TimeoutHandler(ControlHandler):
    """``POST /sandboxes/{id}/timeout {"timeout": s}``: it ends that many seconds from now."""

    async def post(self, sandbox_id: str) -> None:
        record = self.sandbox(sandbox_id)
        timeout = seconds(self.json_object(), "timeout", None)
        if timeout is None:
            raise E2BError(400, "timeout (seconds) is required")
        self.engine.expire_in(record.id, timeout)
        self.set_status(204)
        self.finish()


class ConnectHandler(ControlHandler):
    """``POST /sandboxes/{id}/connect`` (and ``/v2/...``, ``/resume``): resume it if paused, and make
    it live at least ``timeout`` more seconds; 201 when it was resumed, else 200."""

    async def post(self, sandbox_id: str, version: str | None = None) -> None:
        record = self.sandbox(sandbox_id)
        timeout = seconds(self.json_object(), "timeout", None)
        status = 200
        if record.status == "paused":
            record = await self.engine.resume_session(record.id)
            status = 201
        if timeout is not None and end_of(record) < time.time() + timeout:
            record = self.engine.expire_in(record.id, timeout)
        self.reply(self.sandbox_json(record), status)


class PauseHandler(ControlHandler):
    """``POST /sandboxes/{id}/pause``: 204, or 409 when it is paused already."""

    async def post(self, sandbox_id: str) -> None:
        record = self.sandbox(sandbox_id)
        if record.status == "paused":
            raise E2BError(409, "sandbox %s is already paused" % sandbox_id)
        try:
            await self.engine.pause_session(record.id)
        except SessionPaused:
            raise E2BError(409, "sandbox %s is already paused" % sandbox_id) from None
        self.set_status(204)
        self.finish()


class MetricsHandler(ControlHandler):
    """``GET /sandboxes/{id}/metrics``: one sample, now (CPU use since the previous one asked for)."""

    async def get(self, sandbox_id: str) -> None:
        record = self.sandbox(sandbox_id)
        usage = await self.engine.usage(record.id)
        limits = record.limits
        now = time.time()
        cpus = max(1, int(limits.get("cpus") or 1))
        samples: dict[str, tuple[float, int]] = self.settings.setdefault("sandkasten_e2b_cpu_samples", {})
        cpu_ns = int(usage.get("cpu_ns") or 0)
        before = samples.get(record.id)
        samples[record.id] = (now, cpu_ns)
        used_pct = 0.0
        if before is not None and now > before[0]:
            used_pct = min(100.0, (cpu_ns - before[1]) / ((now - before[0]) * 1e9 * cpus) * 100)
        memory_total = int(usage.get("memory_limit_bytes") or (int(limits.get("memory_mb") or 0) << 20))
        disk_total = int(limits.get("workspace_mb") or limits.get("tmp_mb") or 0) << 20
        self.reply(
            [
                {
                    "timestamp": rfc3339(now),
                    "timestampUnix": int(now),
                    "cpuCount": cpus,
                    "cpuUsedPct": round(max(0.0, used_pct), 2),
                    "memUsed": int(usage.get("memory_bytes") or 0),
                    "memTotal": memory_total,
                    "memCache": 0,
                    "diskUsed": 0,
                    "diskTotal": disk_total,
                }
            ]
        )


class UnsupportedHandler(E2BHandler):
    """Any other E2B call: a 501 naming it."""

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        raise E2BError(501, "%s %s is not supported by Sandkasten's E2B API" % (self.request.method, self.request.path))
