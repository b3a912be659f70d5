"""What the handlers share: the settings, the engine and the sessions' kernels.

The engine may be unavailable (no Docker engine, an unusable state_dir): the
server still starts, every route answers 503 with the reason, and ``health``
says what is wrong.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from sandkasten_kernel.engine.config import Settings
from sandkasten_kernel.engine.engine import Engine
from sandkasten_kernel.engine.errors import EngineError
from sandkasten_kernel.provisioner import use_engine

from .errors import ApiError
from .session_kernels import SessionKernels

log = logging.getLogger("sandkasten.server")


class SandkastenService:
    def __init__(
        self, settings: Settings, config_path: str | None, kernel_manager: Any, problem: str | None = None
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.engine: Engine | None = None
        self.problem = problem
        self.kernels = SessionKernels(kernel_manager)
        try:
            if problem is None:
                self.engine = Engine(settings)
        except EngineError as exc:
            self.problem = str(exc)
        except OSError as exc:
            self.problem = "state_dir %s cannot be used: %s" % (settings.server.state_dir, exc.strerror or exc)
        if self.problem:
            log.error("Sandkasten is unavailable: %s", self.problem)

    def engine_or_raise(self) -> Engine:
        if self.engine is None:
            raise ApiError(503, "engine_unavailable", "the Sandkasten engine is not running: %s" % self.problem)
        return self.engine

    @property
    def kernels_dir(self) -> str:
        return os.path.join(self.settings.server.state_dir, "kernels")

    async def start(self) -> None:
        """Reconcile, then start the pool and reaper; provisioners on this loop use this engine."""
        if self.engine is None:
            return
        try:
            report = await self.engine.start()
        except EngineError as exc:
            self.problem = str(exc)
            self.engine = None
            log.error("Sandkasten is unavailable: %s", exc)
            return
        use_engine(self.engine)
        # A person working in a session's kernel (through /api/kernels) keeps it from the idle reaper.
        self.engine.activity_probes.append(self.kernels.last_activity)
        self.engine.before_reap.append(self.kernels.stop)  # no kernel left behind on a reaped session
        if any(report.values()):
            log.info("Sandkasten reconciled its sessions: %s", report)

    async def stop(self) -> None:
        """Stop the sessions' kernels (they need the engine), then the engine. Sessions keep running."""
        await self.kernels.close()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            self.problem = "the server is shutting down"
            use_engine(None)
            await engine.close()
