"""JupyterHub for a class, every kernel in a Sandkasten sandbox (examples/jupyterhub/README.md).

Sandkasten runs as a Hub-managed service: the Hub starts it, gives it its
URL, prefix and API token, and its users log in with the Hub. Each student's
single-user server sends its kernels to the service (Jupyter's gateway
client, with the server's own Hub token), so every kernel runs in a sandbox
from one warm pool, belongs to the student, and mounts the student's own
workspace. What this file reads from the environment has a default for a
machine of its own; the test suite sets the rest.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
env = os.environ.get

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (JupyterHub's config loader provides it)

c.JupyterHub.bind_url = env("HUB_BIND_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_bind_url = env("HUB_INTERNAL_URL", "http://127.0.0.1:8081")
c.ConfigurableHTTPProxy.api_url = env("HUB_PROXY_API_URL", "http://127.0.0.1:8001")
if env("HUB_PROXY_COMMAND"):  # configurable-http-proxy from npm, where it is not on PATH
    c.ConfigurableHTTPProxy.command = [env("HUB_PROXY_COMMAND")]
c.JupyterHub.db_url = "sqlite:///" + os.path.join(env("HUB_STATE_DIR", HERE), "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(env("HUB_STATE_DIR", HERE), "jupyterhub_cookie_secret")

# Who comes in. Replace with your institution's authenticator (OAuthenticator, LDAP, ...).
c.JupyterHub.authenticator_class = env("HUB_AUTHENTICATOR", "dummy")
c.Authenticator.allowed_users = set(env("HUB_STUDENTS", "alice,bob").split(","))
c.Authenticator.admin_users = set(env("HUB_INSTRUCTORS", "teacher").split(","))

# Where students' Jupyter servers run. The kernels are not here: they are Sandkasten's.
c.JupyterHub.spawner_class = env("HUB_SPAWNER", "simple")
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(env("HUB_STATE_DIR", "/tmp"), "home-{username}")
c.Spawner.environment = {"JUPYTER_CONFIG_PATH": os.path.join(HERE, "singleuser")}
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]  # the Hub's own environment, PATH or not
c.Spawner.http_timeout = 90  # a Jupyter server with many extensions on a busy machine
if c.JupyterHub.spawner_class == "simple" and os.geteuid() == 0:
    c.Spawner.args = ["--ServerApp.allow_root=True"]  # the test spawner runs servers as the Hub's own user
c.Spawner.environment["SANDKASTEN_GATEWAY_URL"] = env(
    "SANDKASTEN_GATEWAY_URL", "http://127.0.0.1:8000/services/sandkasten/"
)

# Sandkasten itself, started and stopped by the Hub.
c.JupyterHub.services = [
    {
        "name": "sandkasten",
        "url": env("SANDKASTEN_SERVICE_URL", "http://127.0.0.1:10101"),
        "command": [
            sys.executable,
            "-m",
            "sandkasten_server.cli",
            "serve",
            "--config",
            env("SANDKASTEN_CONFIG", os.path.join(HERE, "sandkasten.yaml")),
        ],
        "environment": {"PATH": env("PATH", "/usr/bin:/bin")},
        "oauth_no_confirm": True,
        "display": True,  # "Sandkasten" in the Hub's Services menu: the dashboard, for instructors
    }
]
# Students reach the service with their own tokens, and their servers' kernels with the servers' tokens.
c.JupyterHub.load_roles = [
    {"name": "user", "scopes": ["self", "access:services!service=sandkasten"]},
    {
        "name": "server",
        "scopes": ["users:activity!user", "access:servers!server", "access:services!service=sandkasten"],
    },
]
if env("HUB_ADMIN_TOKEN"):  # an API token for scripts (and the tests) that act as the Hub's admin
    c.JupyterHub.services.append({"name": "class-admin", "api_token": env("HUB_ADMIN_TOKEN")})
    c.JupyterHub.load_roles.append({"name": "admin", "services": ["class-admin"]})
