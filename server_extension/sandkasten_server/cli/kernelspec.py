"""``sandkasten kernelspec install``: Jupyter kernelspecs whose kernels run in sandboxes."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sandkasten_kernel.engine import attach_catalog
from sandkasten_kernel.kernelspecs import install

from .common import add_command, add_group, settings


def add_to(commands: Any) -> None:
    group = add_group(commands, "kernelspec", "Jupyter kernelspecs that run kernels in sandboxes")
    command = add_command(
        group,
        "install",
        _install,
        'install sandkasten-python ("Python 3 (Sandkasten)") and one kernelspec per allowed image with ipykernel',
    )
    where = command.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="into the user's Jupyter data directory")
    where.add_argument("--sys-prefix", action="store_true", help="into this Python environment (sys.prefix)")
    where.add_argument("--prefix", help="under PREFIX/share/jupyter/kernels")


def _install(options: argparse.Namespace) -> int:
    prefix = sys.prefix if options.sys_prefix else options.prefix
    config = settings(options)
    attach_catalog(config)  # the added images with ipykernel get one too
    for path in install(config, user=options.user, prefix=prefix):
        print("installed %s" % path)
    return 0
