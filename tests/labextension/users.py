"""A classroom's users for the dashboard's browser test: the server's token lets a request in, and the
X-Test-User header says which person sent it, as JupyterHub would. Without the header it is the
instructor, ``teacher`` (an admin through security.admin_users): the browser, and the launcher's own calls.

``sandkasten serve`` loads it from the test's jupyter_server_config.json
(``ServerApp.identity_provider_class``), with the repository on PYTHONPATH.
"""

from __future__ import annotations

import inspect
from typing import Any

from jupyter_server.auth.identity import IdentityProvider, User

INSTRUCTOR = "teacher"


class ClassroomIdentityProvider(IdentityProvider):
    async def get_user(self, handler: Any) -> User | None:
        user = super().get_user(handler)
        if inspect.isawaitable(user):
            user = await user
        if user is None:
            return None
        return User(username=handler.request.headers.get("X-Test-User") or INSTRUCTOR)
