"""``sandkasten serve``: Jupyter Server with the Sandkasten extension, set up from sandkasten.yaml.

It listens on ``listen`` with ``api_key`` as the token. Without a config
file it makes one in the user's data directory (127.0.0.1:8080, a generated
key printed once, state next to it), so the second start is the same server.
Missing or outdated sandbox images are built first, with progress.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

import yaml
from traitlets.config import Config

from sandkasten_kernel.engine import (
    ImageBuilder,
    connect,
    find_config,
    listen_address,
    load_settings,
    user_config_path,
    user_data_dir,
)
from sandkasten_kernel.kernelspecs import allowed_images, kernel_name

from .sandboxed_kernelspecs import SandboxedKernelSpecManager


def default_config_path() -> str:
    """The config `sandkasten serve` uses when none is given or found; made on first use."""
    path = user_config_path()
    if not os.path.exists(path):
        key = secrets.token_urlsafe(32)
        embedded = {
            "listen": "127.0.0.1:8080",
            "api_key": key,
            "state_dir": os.path.join(user_data_dir(), "state"),
            "pool": {"images": {"python": 2}},
        }
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as f:
            f.write("# Made by `sandkasten serve` on first start; see examples/sandkasten.full.yaml for every key.\n")
            yaml.safe_dump(embedded, f, sort_keys=False)
        print("sandkasten: wrote %s with a new API key (shown this once):\n\n    %s\n" % (path, key), flush=True)
    return path


def build_images(names: list[str]) -> None:
    builder = ImageBuilder(connect(), progress=lambda line: print(line, flush=True))
    missing = [row["tag"] for row in builder.status() if not row["current"]]
    if missing:
        print("sandkasten: building images first: %s" % ", ".join(missing), flush=True)
        builder.build(names)


def server_config(config_path: str, extra: list[str]) -> Config:
    settings = load_settings(config_path)  # a bad file stops here, naming the key
    host, port = listen_address(settings.server.listen)
    config = Config()
    config.ServerApp.ip = host
    config.ServerApp.port = port
    config.ServerApp.port_retries = 0  # the configured port or nothing: clients know only that one
    config.ServerApp.open_browser = False
    config.ServerApp.allow_root = True  # Docker access needs root (or the docker group); user code runs in sandboxes
    # The API key opens sandboxes, not the host: no host terminals, no host kernels,
    # and the contents API sees an empty folder of its own.
    config.ServerApp.terminals_enabled = False
    config.ServerApp.kernel_spec_manager_class = SandboxedKernelSpecManager
    images = allowed_images(settings)
    config.KernelSpecManager.allowed_kernelspecs = {kernel_name(name) for name in images}
    if images:  # a kernel started without a name is a sandboxed one too
        config.MappingKernelManager.default_kernel_name = kernel_name("python" if "python" in images else images[0])
    home = os.path.join(settings.server.state_dir, "home")
    os.makedirs(home, exist_ok=True)
    config.ServerApp.root_dir = home
    config.ServerApp.jpserver_extensions = {"sandkasten_server": True}
    config.ServerApp.max_body_size = (settings.quota.max_body_mb + 1) << 20
    config.IdentityProvider.token = settings.server.api_key
    config.SandkastenApp.sandkasten_config = os.path.abspath(config_path)
    return config


def serve(config_path: str | None, extra: list[str], build: bool = True) -> int:
    path = find_config(config_path) or default_config_path()
    config = server_config(path, extra)
    settings = load_settings(path)
    if build:
        build_images(allowed_images(settings))
    from jupyter_server.serverapp import ServerApp

    print("sandkasten: serving on http://%s (config %s)" % (settings.server.listen, path), flush=True)
    app: Any = ServerApp.instance(config=config)
    app.initialize(argv=extra)
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(serve(None, sys.argv[1:]))
