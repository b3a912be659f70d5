"""``SandkastenApp``: the Jupyter Server extension named ``sandkasten``.

It builds the engine from sandkasten.yaml (plus any ``c.Sandkasten*`` options
in the server's own config), registers the REST handlers under
``/sandkasten/api``, makes the sandkasten kernelspecs visible to the server's
kernel manager, and, once the event loop runs, starts the engine (reconcile,
warm pool, reaper) as the one the server's kernel provisioners use.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Unicode
from traitlets.config import Config

from sandkasten_kernel.engine import CONFIG_CLASSES, ConfigError, find_config, load_settings
from sandkasten_kernel.kernelspecs import allowed_images, kernel_name, write_kernelspec

from . import hub
from .e2b import SandboxTokens, e2b_handlers
from .handlers import default_handlers
from .service import SandkastenService

log = logging.getLogger("sandkasten.server")


class SandkastenApp(ExtensionApp):
    name = "sandkasten"
    description = "Sandkasten: hardened Docker sandboxes for agents and notebooks, as a REST API"
    load_other_extensions = True

    sandkasten_config = Unicode(
        None,
        allow_none=True,
        help="The sandkasten.yaml to load, and to write configuration changes to. Default: $SANDKASTEN_CONFIG, "
        "else ./sandkasten.yaml or /etc/sandkasten/sandkasten.yaml if present, else built-in defaults.",
    ).tag(config=True)

    service: SandkastenService

    def _sandkasten_config(self) -> Config:
        """``c.Sandkasten*`` options from the server's config: they override sandkasten.yaml."""
        source = self.serverapp.config if self.serverapp is not None else self.config
        return Config({cls.__name__: source[cls.__name__] for cls in CONFIG_CLASSES if cls.__name__ in source})

    def initialize_settings(self) -> None:
        path = find_config(self.sandkasten_config)
        problem = None
        try:
            settings = load_settings(path, self._sandkasten_config())
        except ConfigError as exc:
            problem = str(exc)
            settings = load_settings(None)
        assert self.serverapp is not None
        self.service = SandkastenService(settings, path, self.serverapp.kernel_manager, problem=problem)
        self.settings["sandkasten_service"] = self.service
        self.settings["sandkasten_e2b_tokens"] = SandboxTokens(settings.server.state_dir)
        if hub.uses_hub_login(self.serverapp):
            # Tornado's own XSRF check runs before a handler knows whether a Hub token came
            # with the request; Jupyter's handlers check again once it does (as JupyterHub's
            # single-user servers do).
            self.settings["xsrf_cookies"] = False
        if self.service.built is not None:
            self._add_kernelspecs()
        log.info(
            "Sandkasten API at %ssandkasten/api (config: %s)", self.serverapp.base_url, path or "built-in defaults"
        )

    def _add_kernelspecs(self) -> None:
        """Make every allowed image's kernel available, unless a sandkasten kernelspec is installed already."""
        assert self.serverapp is not None
        manager: Any = self.serverapp.kernel_spec_manager
        images = allowed_images(self.service.settings)
        if all(kernel_name(image) in manager.find_kernel_specs() for image in images):
            return
        folder = self.service.kernels_dir
        for image in images:
            write_kernelspec(folder, image)
        if folder not in manager.kernel_dirs:
            manager.kernel_dirs.append(folder)

    def initialize_handlers(self) -> None:
        self.handlers.extend(default_handlers)
        self.handlers.extend(e2b_handlers)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await self.service.start()

    async def stop_extension(self) -> None:
        await self.service.stop()
