"""The REST routes, relative to the server's base URL: ``default_handlers`` as jupyter_server's own modules have it."""

from __future__ import annotations

from typing import Any

from .admin import (
    ConfigHandler,
    EventsHandler,
    HealthHandler,
    ImageHandler,
    ImagesHandler,
    NoRouteHandler,
    OpenAPIHandler,
    PoolHandler,
    WorkspaceHandler,
    WorkspacesHandler,
)
from .exec import ExecHandler, ExecSocketHandler
from .files import ArchiveHandler, FilesHandler
from .kernel import KernelHandler, KernelInterruptHandler
from .processes import (
    ProcessesHandler,
    ProcessEventsHandler,
    ProcessHandler,
    ProcessSignalHandler,
    ProcessStdinHandler,
    ProcessWaitHandler,
)
from .sessions import RunCodeHandler, SessionHandler, SessionPauseHandler, SessionResumeHandler, SessionsHandler
from .snapshots import SessionForkHandler, SessionSnapshotsHandler, SnapshotHandler, SnapshotsHandler
from .terminal import TerminalSocketHandler

API = "/sandkasten/api"
SESSION = API + r"/sessions/(?P<session_id>[^/]+)"
PROCESS = SESSION + r"/processes/(?P<pid>[^/]+)"

default_handlers: list[tuple[str, Any]] = [
    (API + r"/sessions/?", SessionsHandler),
    (SESSION + r"/?", SessionHandler),
    (SESSION + r"/pause/?", SessionPauseHandler),
    (SESSION + r"/resume/?", SessionResumeHandler),
    (SESSION + r"/snapshots/?", SessionSnapshotsHandler),
    (SESSION + r"/fork/?", SessionForkHandler),
    (SESSION + r"/exec/?", ExecHandler),
    (SESSION + r"/exec/ws", ExecSocketHandler),
    (SESSION + r"/processes/?", ProcessesHandler),
    (PROCESS + r"/?", ProcessHandler),
    (PROCESS + r"/events/?", ProcessEventsHandler),
    (PROCESS + r"/wait/?", ProcessWaitHandler),
    (PROCESS + r"/stdin/?", ProcessStdinHandler),
    (PROCESS + r"/signal/?", ProcessSignalHandler),
    (SESSION + r"/run_code/?", RunCodeHandler),
    (SESSION + r"/kernel/?", KernelHandler),
    (SESSION + r"/kernel/interrupt/?", KernelInterruptHandler),
    (SESSION + r"/terminal", TerminalSocketHandler),
    (SESSION + r"/files(?:/(?P<path>.*))?", FilesHandler),
    (SESSION + r"/archive(?:/(?P<path>.*))?", ArchiveHandler),
    (API + r"/workspaces/?", WorkspacesHandler),
    (API + r"/workspaces/(?P<name>[^/]+)", WorkspaceHandler),
    (API + r"/snapshots/?", SnapshotsHandler),
    (API + r"/snapshots/(?P<name>[^/]+)", SnapshotHandler),
    (API + r"/images/?", ImagesHandler),
    (API + r"/images/(?P<name>[^/]+)", ImageHandler),
    (API + r"/pool/?", PoolHandler),
    (API + r"/config/?", ConfigHandler),
    (API + r"/health/?", HealthHandler),
    (API + r"/events/?", EventsHandler),
    (API + r"/openapi.json", OpenAPIHandler),
    (API + r"(?:/.*)?", NoRouteHandler),  # last: anything else under the API is a JSON 404
]
