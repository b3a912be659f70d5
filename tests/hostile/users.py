"""An identity provider with several users, each with a token: what a multi-user deployment
(JupyterHub, or an operator's own provider) gives Jupyter Server. The tests use it to be
several different people against one real server.

``local`` is an ordinary user whose name happens to be the one the server gives its single
user under Jupyter Server's own login; ``reader`` is refused websockets by an authorizer
that, like one asking a policy service, answers asynchronously.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from jupyter_server.base.handlers import JupyterHandler
from tornado import web
from traitlets import Dict, Unicode

TOKENS = {
    "alice-token": "alice",
    "bob-token": "bob",
    "teacher-token": "teacher",
    "local-token": "local",
    "reader-token": "reader",
}


class TokenPerUserIdentityProvider(IdentityProvider):
    users = Dict(value_trait=Unicode(), default_value=TOKENS, help="token -> user name").tag(config=True)

    async def get_user_token(self, handler: web.RequestHandler) -> User | None:
        header = handler.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        name = self.users.get(token) if scheme.lower() == "token" else None
        return User(username=name) if name else None


class AsyncAuthorizer(Authorizer):
    """Everyone may do everything, except that ``reader`` may not execute (no terminal, no exec
    socket). The answer is a coroutine, as Jupyter Server allows: a refusal that is not awaited
    is a truthy coroutine object, and would let the websocket through."""

    async def is_authorized(self, handler: JupyterHandler, user: User, action: str, resource: str) -> bool:
        await asyncio.sleep(0)  # decided elsewhere, as a policy service would
        return not (user.username == "reader" and action == "execute")
