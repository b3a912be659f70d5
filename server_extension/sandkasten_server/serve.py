"""``sandkasten serve``: Jupyter Server with the Sandkasten extension, set up from sandkasten.yaml.

It listens on ``listen`` with ``api_key`` as the token. Without a config
file it makes one in the user's data directory (127.0.0.1:8080, a generated
key printed once, state next to it), so the second start is the same server.
Missing or outdated sandbox images are built first, with progress. Its root
URL opens JupyterLab with the Sandkasten panel, where JupyterLab is installed
(the ``[lab]`` extra); every start prints that URL.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import sys
from typing import Any

import yaml
from traitlets.config import Config

from sandkasten_kernel.engine import (
    IMAGES,
    CustomImages,
    ImageBuilder,
    ImageError,
    Settings,
    attach_catalog,
    connect,
    find_config,
    listen_address,
    load_settings,
    open_state_store,
    user_config_path,
    user_data_dir,
)
from sandkasten_kernel.kernelspecs import allowed_images, kernel_name

from . import hub
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


def build_images(settings: Settings) -> None:
    """Build the missing or outdated images sessions may use: the built-in ones, then the added ones. An added
    image that fails to build is reported, and the server starts without it."""
    client = connect()
    builder = ImageBuilder(client, progress=lambda line: print(line, flush=True))
    missing = [row["tag"] for row in builder.status() if not row["current"]]
    if missing:
        print("sandkasten: building images first: %s" % ", ".join(missing), flush=True)
        builder.build([name for name in IMAGES if settings.allows_image(name)])
    if settings.added is None:
        return
    store = open_state_store(settings.server.state_dir)
    try:
        images = CustomImages(store, client, lambda line: print(line, flush=True))
        stale = [
            row["name"]
            for row in images.listing()
            if row["kind"] != "builtin"
            and row["state"] in ("outdated", "missing")
            and settings.allows_image(row["name"])
        ]
        if stale:
            print("sandkasten: building added images first: %s" % ", ".join(stale), flush=True)
            try:
                images.build(stale)
            except ImageError as exc:
                print("sandkasten: %s\nsandkasten: starting without them" % exc, flush=True)
    finally:
        store.close()


# The query the dashboard plugin (labextension/src/index.ts) answers by opening its panel.
DASHBOARD_QUERY = "sandkasten=dashboard"


def has_jupyterlab() -> bool:
    return importlib.util.find_spec("jupyterlab") is not None


def root_url(host: str, port: int, base_url: str = "/") -> str:
    """The URL a person opens: a wildcard address is reached on this machine as 127.0.0.1."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, "[%s]" % host if ":" in host else host)
    return "http://%s:%d%s" % (shown, port, base_url)


def banner(root: str, config_path: str, token: str | None = None) -> str:
    """What every start prints: where the dashboard and the API are (the token only when asked for)."""
    if not has_jupyterlab():
        dashboard = "none: JupyterLab is not installed (pip install 'sandkasten-kernel[lab]')"
    elif token:
        dashboard = "%s?token=%s" % (root, token)
    else:
        dashboard = "%s (JupyterLab with the Sandkasten panel; log in with the API key)" % root
    return "sandkasten: serving (config %s)\n  dashboard  %s\n  API        %ssandkasten/api\n" % (
        config_path,
        dashboard,
        root,
    )


# The server extensions `sandkasten serve` runs; any other one enabled in the environment (nbgrader's
# formgrader, a language server proxy) would hand the API key's holder something of the host.
OUR_EXTENSIONS = ("sandkasten_server", "jupyterlab")


def only_our_extensions() -> dict[str, bool]:
    """Our extensions on, every other one the environment enables off (explicit keys win over config files)."""
    from jupyter_core.paths import jupyter_config_path
    from jupyter_server.extension.config import ExtensionConfigManager

    manager = ExtensionConfigManager(read_config_path=jupyter_config_path())
    found = manager.get_jpserver_extensions()  # type: ignore[no-untyped-call]
    chosen = {name: False for name in found}
    chosen.update({name: True for name in OUR_EXTENSIONS if name == "sandkasten_server" or name in found})
    return chosen


def server_config(config_path: str, extra: list[str]) -> Config:
    settings = load_settings(config_path)  # a bad file stops here, naming the key
    attach_catalog(settings)  # the added images with ipykernel are kernelspecs too
    host, port = listen_address(settings.server.listen)
    config = Config()
    config.ServerApp.ip = host
    config.ServerApp.port = port
    config.ServerApp.port_retries = 0  # the configured port or nothing: clients know only that one
    config.ServerApp.open_browser = False
    if has_jupyterlab():
        config.ServerApp.default_url = "/lab?" + DASHBOARD_QUERY
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
    config.ServerApp.jpserver_extensions = only_our_extensions()
    config.ServerApp.max_body_size = (settings.quota.max_body_mb + 1) << 20
    config.IdentityProvider.token = settings.server.api_key
    config.SandkastenApp.sandkasten_config = os.path.abspath(config_path)
    if hub.under_hub():
        hub.configure(config)
    return config


def serve(config_path: str | None, extra: list[str], build: bool = True, show_token: bool = False) -> int:
    path = find_config(config_path) or default_config_path()
    config = server_config(path, extra)
    settings = load_settings(path)
    attach_catalog(settings)
    if build:
        build_images(settings)
    from jupyter_server.serverapp import ServerApp

    app: Any = ServerApp.instance(config=config)
    app.initialize(argv=extra)
    root = root_url(app.ip, app.port, app.base_url)  # the arguments may have moved it from `listen`
    print(banner(root, path, settings.server.api_key if show_token else None), flush=True)
    app.start()
    return 0


if __name__ == "__main__":
    sys.exit(serve(None, sys.argv[1:]))
