"""Sandkasten as a JupyterHub service: the Hub's users, tokens and OAuth login, on the service's prefix.

JupyterHub starts a managed service (or an operator an external one) with the
``JUPYTERHUB_*`` environment: the service's URL and prefix, its API token, its
OAuth client. There ``sandkasten serve`` takes its users from the Hub
(jupyterhub's own ``JupyterHubIdentityProvider``): a request's Hub token, or a
browser's Hub login, names a Hub user, who must hold the access scope to this
service. Sessions, kernels, workspaces and quotas are then that person's, and
Hub admins (with ``security.admin_users``) see everyone's. The API key of
sandkasten.yaml opens nothing here: the Hub decides who comes in.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from typing import Any

from traitlets.config import Config

HUB_IDENTITY_PROVIDER = "jupyterhub.singleuser.extension.JupyterHubIdentityProvider"
REQUIRED = ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_SERVICE_URL")


def under_hub(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process was started as a JupyterHub service (the Hub's environment is set)."""
    return all(environ.get(name) for name in REQUIRED)


def configure(config: Config, environ: Mapping[str, str] = os.environ) -> None:
    """Serve on the Hub's URL and prefix for the service, with the Hub's users."""
    url = urllib.parse.urlsplit(environ["JUPYTERHUB_SERVICE_URL"])
    config.ServerApp.ip = url.hostname or "127.0.0.1"
    config.ServerApp.port = url.port or 80
    config.ServerApp.base_url = environ["JUPYTERHUB_SERVICE_PREFIX"]
    config.ServerApp.identity_provider_class = HUB_IDENTITY_PROVIDER
    config.ServerApp.default_url = "/lab?sandkasten=dashboard"


def uses_hub_login(serverapp: Any) -> bool:
    """Whether the server's users are the Hub's (its identity provider is JupyterHub's)."""
    return type(getattr(serverapp, "identity_provider", None)).__name__ == "JupyterHubIdentityProvider"


def hub_admin(user: Any) -> bool:
    """Whether a request's user is a Hub admin (JupyterHub's user model says so)."""
    model = getattr(user, "hub_user", None)
    return isinstance(model, dict) and bool(model.get("admin"))
