"""The kernelspecs ``sandkasten serve`` offers: sandboxed ones only, whatever else the host has.

Its API key opens sandboxes, not the host. Jupyter's own ``KernelSpecManager``
filters listings by ``allowed_kernelspecs`` but starts any kernelspec found by
name (``POST /api/kernels {"name": "python3"}`` ran ipykernel on the host, as
the server's user), and adds the host's own Python kernel besides. Here a
kernelspec exists only if it runs through the sandkasten provisioner.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel
from tornado import web

from sandkasten_kernel.kernelspecs import PROVISIONER_NAME


class NoSandboxedKernel(NoSuchKernel, web.HTTPError):
    """No sandboxed kernelspec has that name: a ``NoSuchKernel`` to jupyter_client, and a 404 (not
    Jupyter's "Unhandled error" 500) to the client of ``POST /api/kernels``."""

    def __init__(self, kernel_name: str) -> None:
        message = "no kernelspec %r here: this server runs sandboxed kernels only" % kernel_name
        web.HTTPError.__init__(self, 404, message.replace("%", "%%"))
        self.name = kernel_name


def is_sandboxed(spec: KernelSpec) -> bool:
    provisioner = (spec.metadata or {}).get("kernel_provisioner") or {}
    return isinstance(provisioner, dict) and provisioner.get("provisioner_name") == PROVISIONER_NAME


class SandboxedKernelSpecManager(KernelSpecManager):
    """A ``KernelSpecManager`` that knows only kernelspecs run by the sandkasten provisioner."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ensure_native_kernel = False  # the host's own Python kernel is never offered

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        try:
            spec = super().get_kernel_spec(kernel_name)
        except NoSuchKernel:
            raise NoSandboxedKernel(kernel_name) from None
        if not is_sandboxed(spec) or (self.allowed_kernelspecs and kernel_name not in self.allowed_kernelspecs):
            raise NoSandboxedKernel(kernel_name)
        return spec

    def find_kernel_specs(self) -> dict[str, str]:
        found = super().find_kernel_specs()
        sandboxed = {}
        for name, resource_dir in found.items():
            try:
                spec = KernelSpec.from_resource_dir(resource_dir)
            except (OSError, ValueError):
                continue
            if is_sandboxed(spec):
                sandboxed[name] = resource_dir
        return sandboxed
