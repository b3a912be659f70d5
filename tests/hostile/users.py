"""An identity provider with several users, each with a token: what a multi-user deployment
(JupyterHub, or an operator's own provider) gives Jupyter Server. The tests use it to be
three different people against one real server."""

from __future__ import annotations

from jupyter_server.auth.identity import IdentityProvider, User
from tornado import web
from traitlets import Dict, Unicode

TOKENS = {"alice-token": "alice", "bob-token": "bob", "teacher-token": "teacher"}


class TokenPerUserIdentityProvider(IdentityProvider):
    users = Dict(value_trait=Unicode(), default_value=TOKENS, help="token -> user name").tag(config=True)

    async def get_user_token(self, handler: web.RequestHandler) -> User | None:
        header = handler.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        name = self.users.get(token) if scheme.lower() == "token" else None
        return User(username=name) if name else None
