"""A real Jupyter Server (pytest-jupyter) with the sandkasten extension, and a synchronous client for it.

The server, its engine and the warm pool run on pytest-jupyter's event loop;
``Api`` calls run that loop until each reply is in, so tests read top to bottom.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from tornado.httpclient import HTTPResponse
from traitlets.config import Config

from sandkasten_server.service import SandkastenService

T = TypeVar("T")
PYTHON = "sandkasten/runtime:python"


def server_yaml(state_dir: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "api_key": "not-used-by-pytest-jupyter",
        "state_dir": state_dir,
        "pool": {"images": {"python": 1}, "with_kernel": True},
        "quota": {"max_sessions_per_user": 6, "max_body_mb": 8},
        "session": {"ttl_s": 600},
    }
    config.update(overrides)
    return config


@pytest.fixture
def sandkasten_yaml(state_dir: str, tmp_path: Path) -> Path:
    path = tmp_path / "sandkasten.yaml"
    path.write_text(yaml.safe_dump(server_yaml(state_dir)))
    return path


@pytest.fixture
def jp_server_config(sandkasten_yaml: Path) -> Config:
    config = Config()
    config.ServerApp.jpserver_extensions = {"sandkasten_server": True}
    config.SandkastenApp.sandkasten_config = str(sandkasten_yaml)
    return config


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """``api.post("sessions", {...})`` -> ``Reply``; any status, never an exception."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fetch: Any, service: SandkastenService) -> None:
        self.loop = loop
        self.fetch = fetch
        self.service = service

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    def call(self, method: str, path: str, body: Any = None, token: bool = True, **options: Any) -> Reply:
        headers = dict(options.pop("headers", {}))
        if not token:
            headers["Authorization"] = ""
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if body is None and method in ("POST", "PUT"):
            body = b""
        response: HTTPResponse = self.run(
            self.fetch(
                "sandkasten/api/" + path,
                method=method,
                body=body,
                headers=headers,
                raise_error=False,
                allow_nonstandard_methods=True,
                request_timeout=120,
                **options,
            )
        )
        return Reply(response.code, response.headers, response.body or b"")

    def get(self, path: str, **options: Any) -> Reply:
        return self.call("GET", path, **options)

    def post(self, path: str, body: Any = None, **options: Any) -> Reply:
        return self.call("POST", path, body, **options)

    def put(self, path: str, body: Any = None, **options: Any) -> Reply:
        return self.call("PUT", path, body, **options)

    def delete(self, path: str, **options: Any) -> Reply:
        return self.call("DELETE", path, **options)

    def session(self, **body: Any) -> str:
        reply = self.post("sessions", body)
        assert reply.status == 201, reply.body
        session_id: str = reply.json["id"]
        return session_id

    def exec(self, session_id: str, command: str, **options: Any) -> dict[str, Any]:
        reply = self.post("sessions/%s/exec" % session_id, {"command": command, **options})
        assert reply.status == 200, reply.body
        result: dict[str, Any] = reply.json
        return result

    def wait_warm(self, image: str = PYTHON, count: int = 1) -> None:
        async def wait() -> None:
            deadline = time.monotonic() + 120
            while self.service.engine_or_raise().pool_status()["images"].get(image, {}).get("ready", 0) < count:
                assert time.monotonic() < deadline, "the pool never filled"
                await asyncio.sleep(0.05)

        self.run(wait())


@pytest.fixture
def api(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Api]:
    """The extension started (engine, pool) as a server start would; every session destroyed afterwards."""
    yield from started_api(jp_serverapp, jp_fetch, jp_asyncio_loop)


def started_api(jp_serverapp: Any, jp_fetch: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Api]:
    """The ``api`` fixture's body, for test modules that configure the server their own way."""
    jp_asyncio_loop.run_until_complete(jp_serverapp.extension_manager.start_all_extensions())
    service: SandkastenService = jp_serverapp.web_app.settings["sandkasten_service"]
    assert service.engine is not None, service.problem
    client = Api(jp_asyncio_loop, jp_fetch, service)
    yield client
    engine = service.engine

    async def destroy_all() -> None:
        await service.kernels.close()
        for record in engine.list_sessions():
            await engine.destroy_session(record.id)
        await service.stop()  # the warm pool too, before state_dir checks for leftovers

    jp_asyncio_loop.run_until_complete(destroy_all())
