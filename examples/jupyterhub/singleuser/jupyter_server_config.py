"""Each student's Jupyter server: every kernel runs in Sandkasten, started with the server's own Hub token.

The Hub puts this folder on JUPYTER_CONFIG_PATH (jupyterhub_config.py). The
token names the student, so the service records the kernel as theirs.
"""

import os

c = get_config()  # type: ignore[name-defined]  # noqa: F821  (Jupyter's config loader provides it)

c.GatewayClient.url = os.environ["SANDKASTEN_GATEWAY_URL"]
c.GatewayClient.auth_token = os.environ["JUPYTERHUB_API_TOKEN"]
c.GatewayClient.auth_scheme = "token"
c.GatewayClient.request_timeout = 120.0  # a cold start when the pool is empty
# Where the students' servers share an environment with Sandkasten (as on one machine), its
# extension stays off here: the Hub's service is the one Sandkasten.
c.ServerApp.jpserver_extensions = {"sandkasten_server": False}
