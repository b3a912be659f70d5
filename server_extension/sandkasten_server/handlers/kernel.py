"""``sessions/{id}/kernel``: a session's kernel for a Jupyter client in another process on this host.

The kernel provisioner in an agent's process (``AsyncKernelManager``, nbclient,
``jupyter console``) claims a session from this server's warm pool, then asks
here for its kernel: the server starts it (or finds it running), lets the
caller's local user connect to its sockets, and answers with the connection
info. The client then owns the kernel: it interrupts, restarts and stops it
here, and talks to it directly over the sockets.
"""

from __future__ import annotations

import os

from jupyter_server.auth.decorator import authorized
from tornado import web

from sandkasten_kernel.engine import SessionRecord

from ..errors import ApiError
from ..local_peer import peer_uid
from ..session_kernels import CLIENT_HOLDER
from .base import SandkastenHandler


class KernelHandler(SandkastenHandler):
    def refuse_if_the_server_runs_it(self, record: SessionRecord) -> None:
        """A kernel under this server's own kernel manager is not a client's to take or stop."""
        if self.service.kernels.running(record) is not None:
            raise ApiError(409, "kernel_in_use", "the session's kernel runs under this server's kernel manager")

    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = self.session_record(session_id)
        body = self.json_body("KernelClaim", required=False)
        self.refuse_if_the_server_runs_it(record)
        uid = peer_uid(self.request)
        if uid is None:
            raise ApiError(
                409,
                "not_local",
                "a kernel's sockets are Unix sockets on the server's host: ask from a process there "
                "(a Jupyter server elsewhere uses --gateway-url instead)",
            )
        holder = CLIENT_HOLDER + str(body.get("kernel_id") or "anonymous")
        info = await self.engine.start_kernel(record.id, kernel_id=holder)
        if uid != os.geteuid():
            self.engine.grant_kernel(record.id, uid)
        self.reply({"session_id": record.id, "connection_info": info}, 201)

    @web.authenticated
    @authorized
    async def get(self, session_id: str) -> None:
        record = self.session_record(session_id)
        status = await self.engine.kernel_status(record.id)
        self.reply(
            {
                "alive": bool(status.get("alive")),
                "exit_code": status.get("exit_code"),
                "held_by": record.kernel_id,
                "paused": bool(status.get("paused")),
            }
        )

    @web.authenticated
    @authorized
    async def delete(self, session_id: str) -> None:
        """Stop the kernel and let go of it; the session stays, and the kernel can be started again."""
        record = self.session_record(session_id)
        self.refuse_if_the_server_runs_it(record)
        await self.engine.stop_kernel(record.id)
        self.engine.release_kernel(record.id)
        self.set_status(204)
        self.finish()


class KernelInterruptHandler(SandkastenHandler):
    @web.authenticated
    @authorized
    async def post(self, session_id: str) -> None:
        record = self.session_record(session_id)
        await self.engine.interrupt_kernel(record.id)
        self.set_status(204)
        self.finish()
