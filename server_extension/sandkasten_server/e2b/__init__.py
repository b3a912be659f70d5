"""E2B's API on Sandkasten: E2B's own SDKs, unmodified, with two environment variables.

``E2B_API_URL=http://HOST:PORT/e2b`` reaches the control plane (``control``),
``E2B_SANDBOX_URL=http://HOST:PORT/e2b/sandbox`` a sandbox's envd and code
interpreter (``sandbox_traffic``), and ``E2B_API_KEY`` is a Sandkasten token
(``tokens``). docs/e2b.md has the table of E2B's calls and what each does here.
"""

from __future__ import annotations

from typing import Any

from .control import (
    ConnectHandler,
    MetricsHandler,
    PauseHandler,
    SandboxesHandler,
    SandboxHandler,
    TimeoutHandler,
    UnsupportedHandler,
)
from .sandbox_traffic import SandboxTrafficHandler
from .tokens import SandboxTokens, api_key_for

E2B = r"/e2b"
SANDBOX = E2B + r"/sandboxes/(?P<sandbox_id>[^/]+)"

e2b_handlers: list[tuple[str, Any]] = [
    (E2B + r"/sandbox/(?P<path>.*)", SandboxTrafficHandler),
    (E2B + r"/(?P<version>v2/)?sandboxes/?", SandboxesHandler),
    (E2B + r"/v2/sandboxes/(?P<sandbox_id>[^/]+)/connect/?", ConnectHandler),
    (SANDBOX + r"/?", SandboxHandler),
    (SANDBOX + r"/(?:connect|resume)/?", ConnectHandler),
    (SANDBOX + r"/timeout/?", TimeoutHandler),
    (SANDBOX + r"/pause/?", PauseHandler),
    (SANDBOX + r"/metrics/?", MetricsHandler),
    (E2B + r"(?:/.*)?", UnsupportedHandler),  # last: any other E2B call is a 501 naming it
]

__all__ = ["SandboxTokens", "api_key_for", "e2b_handlers"]
