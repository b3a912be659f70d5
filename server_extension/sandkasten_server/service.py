"""What the handlers share: the settings, the engine and the sessions' kernels.

The engine may be unavailable (no Docker engine, an unusable state_dir): the
server still starts, every route answers 503 with the reason, and ``health``
says what is wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from sandkasten_kernel.engine import Engine, EngineError, Settings
from sandkasten_kernel.provisioner import use_engine

from .errors import RETRY_AFTER_S, ApiError
from .identity import kernel_user
from .session_kernels import SessionKernels

KERNELS_CLOSE_TIMEOUT_S = 15.0  # the launcher SIGKILLs a server still up after 30 s

log = logging.getLogger("sandkasten.server")


class SandkastenService:
    def __init__(
        self, settings: Settings, config_path: str | None, kernel_manager: Any, problem: str | None = None
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.built: Engine | None = None  # the engine, before start() has reconciled it
        self.engine: Engine | None = None  # the engine, once it is ready for requests
        self.problem = problem
        self.kernels = SessionKernels(kernel_manager, settings.quota.max_kernel_message_mb << 20)
        try:
            if problem is None:
                self.built = Engine(settings)
                self.problem = "it is starting (reconciling its sessions with Docker)"
        except EngineError as exc:
            self.problem = str(exc)
        except OSError as exc:
            self.problem = "state_dir %s cannot be used: %s" % (settings.server.state_dir, exc.strerror or exc)
        if self.built is None:
            log.error("Sandkasten is unavailable: %s", self.problem)

    def engine_or_raise(self) -> Engine:
        if self.engine is None:
            raise ApiError(
                503,
                "engine_unavailable",
                "the Sandkasten engine is not running: %s" % self.problem,
                {"Retry-After": str(RETRY_AFTER_S)},
            )
        return self.engine

    @property
    def kernels_dir(self) -> str:
        return os.path.join(self.settings.server.state_dir, "kernels")

    async def start(self) -> None:
        """Reconcile, then start the pool and reaper; provisioners on this loop use this engine."""
        engine = self.built
        if engine is None:
            return
        try:
            report = await engine.start()
        except EngineError as exc:
            self.problem = str(exc)
            self.built = None
            log.error("Sandkasten is unavailable: %s", exc)
            return
        use_engine(engine, kernel_user)  # a kernel started through /api/kernels is its requester's session
        # A person working in a session's kernel (through /api/kernels) keeps it from the idle reaper.
        engine.activity_probes.append(self.kernels.last_activity)
        engine.activity_probes.append(self.kernels.held_by_a_client)
        engine.before_reap.append(self.kernels.stop)  # no kernel left behind on a reaped session
        engine.busy_probes.append(self.kernels.busy)  # no pause while run_code runs
        # Only now: a session made while reconcile runs would look like an orphan to it.
        self.engine, self.problem = engine, None
        if any(report.values()):
            log.info("Sandkasten reconciled its sessions: %s", report)

    async def stop(self) -> None:
        """Stop the sessions' kernels (they need the engine), then the engine. Sessions keep running;
        paused ones keep their kernels too (``SessionKernels.close``)."""
        try:
            paused = [r for r in self.engine.list_sessions() if r.status == "paused"] if self.engine else []
            # Bounded: a kernel manager stuck in a shutdown must not keep the engine from closing
            # (its warm pool would outlive the server).
            await asyncio.wait_for(self.kernels.close(keep=paused), KERNELS_CLOSE_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.error("the sessions' kernels did not stop in %g s; stopping the engine anyway", KERNELS_CLOSE_TIMEOUT_S)
        except Exception:  # a kernel Jupyter failed to start is still listed, and errors here
            log.exception("stopping the sessions' kernels failed; stopping the engine anyway")
        if self.built is not None:
            engine, self.engine, self.built = self.built, None, None
            self.problem = "the server is shutting down"
            use_engine(None)
            await engine.close()
