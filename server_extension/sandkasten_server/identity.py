"""Who is asking: the owner a request's sessions and workspaces are recorded under,
and whether they may act on everyone's.

With Jupyter Server's own login (one shared token or password) there is one person
behind every request, whatever random name the server gives it: that person is the
owner ``local``, an admin, and their named workspaces are the server's own (the
volumes they always had). Behind any other identity provider a user is their user
name, and an admin only if ``security.admin_users`` lists them: a name alone proves
nothing (a user may well be called "local").

Kernels started through Jupyter's own API (``/api/kernels``, ``/api/sessions``)
belong to the user of that request too: Jupyter Server keeps the request's handler
in ``CallContext`` (a context variable of the request's task, which the kernel
manager's start runs in), and ``kernel_user`` reads it for the provisioner.
"""

from __future__ import annotations

from typing import Any

from jupyter_server import CallContext
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider

from sandkasten_kernel.engine import Settings
from sandkasten_kernel.provisioner import KernelUser

from .hub import hub_admin

SINGLE_USER_PROVIDERS = (IdentityProvider, PasswordIdentityProvider)
LOCAL_USER = "local"


def single_user(handler: Any) -> bool:
    return type(handler.identity_provider) in SINGLE_USER_PROVIDERS


def owner_of(handler: Any) -> str:
    """The owner of what ``handler``'s (authenticated) user makes; quotas count per owner."""
    return LOCAL_USER if single_user(handler) else str(handler.current_user.username)


def workspace_owner_of(handler: Any) -> str | None:
    """Whose named workspaces ``handler``'s user names: theirs, or on a single-user server the server's own."""
    return None if single_user(handler) else owner_of(handler)


def is_admin(handler: Any, settings: Settings) -> bool:
    """A single-user server's one person, a user ``security.admin_users`` names, or a JupyterHub admin."""
    return single_user(handler) or owner_of(handler) in settings.security.admin_users or hub_admin(handler.current_user)


def kernel_user() -> KernelUser | None:
    """The user of the Jupyter request under way in this task, if any (None: no request, or no user)."""
    handler = CallContext.get(CallContext.JUPYTER_HANDLER)
    # Set in the handler's prepare() once its user is known (reading current_user before that raises).
    if handler is None or getattr(handler, "_jupyter_current_user", None) is None:
        return None
    return KernelUser(owner_of(handler), workspace_owner_of(handler))
