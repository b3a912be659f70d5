"""Sandkasten's runner: PID 1 of every sandbox (see runner/PROTOCOL.md).

Standard library only, Python >= 3.9: it runs on the sandbox image's python3.
"""

__version__ = "0.1.0"
