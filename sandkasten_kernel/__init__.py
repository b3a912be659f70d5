"""Sandkasten's engine (``engine/``) and the kernel provisioner on top of it."""

__version__ = "0.1.0"
