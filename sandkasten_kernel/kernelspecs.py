"""Kernelspecs that run every kernel in a Sandkasten sandbox.

``sandkasten-python`` ("Python 3 (Sandkasten)") uses sandkasten/runtime:python;
there is one more per image the configuration allows (an added image only if it
has ipykernel, and only where its state directory's catalog is known). Each names the
``sandkasten-provisioner`` and carries the sandbox settings in
``metadata.kernel_provisioner.config``; sandkasten.yaml caps all of them.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager

from .engine import IMAGES, Settings

PROVISIONER_NAME = "sandkasten-provisioner"


def kernel_name(image: str) -> str:
    """The kernelspec name of ``image``'s sandboxed kernel (sandkasten-python, say)."""
    return "sandkasten-%s" % image


def kernelspec(image: str, **config: Any) -> dict[str, Any]:
    """The kernel.json of ``image``'s sandboxed kernel; ``config`` goes to the provisioner (limits, workspace...)."""
    display = "Python 3 (Sandkasten)" if image == "python" else "Python 3 (Sandkasten %s)" % image
    return {
        # Never run on the host: the provisioner asks the sandbox's runner to start the kernel.
        "argv": ["python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display,
        "language": "python",
        "interrupt_mode": "signal",  # the provisioner turns SIGINT into the runner's kernel_interrupt
        "metadata": {
            "debugger": False,
            "kernel_provisioner": {"provisioner_name": PROVISIONER_NAME, "config": {"image": image, **config}},
        },
    }


def allowed_images(settings: Settings) -> list[str]:
    """The images the configuration allows that run a Jupyter kernel: the built-in ones in their build order,
    then the added ones with ipykernel, by name."""
    added = sorted(settings.added.names()) if settings.added is not None else []
    kernels = [name for name in added if settings.image_has_kernel(name)]
    return [name for name in [*IMAGES, *kernels] if settings.allows_image(name)]


def write_kernelspec(kernels_dir: str, image: str) -> str:
    """Write the kernelspec for ``image`` into ``kernels_dir/<name>/``; return that folder."""
    folder = os.path.join(kernels_dir, kernel_name(image))
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump(kernelspec(image), f, indent=2)
    return folder


def install(settings: Settings, user: bool = False, prefix: str | None = None) -> list[str]:
    """Install one kernelspec per allowed sandkasten image; return where each went."""
    manager = KernelSpecManager()
    installed = []
    for image in allowed_images(settings):
        with tempfile.TemporaryDirectory() as kernels_dir:
            source = write_kernelspec(kernels_dir, image)
            installed.append(manager.install_kernel_spec(source, kernel_name(image), user=user, prefix=prefix))
    return installed
