#!/usr/bin/env python3
"""Build the sandkasten/daemon image from this checkout, without a registry.

1. ``sandkasten images build``: the sandbox images, and with them the Debian
   base the daemon starts from (skipped when current);
2. the project's wheel (with its prebuilt dashboard) into ``wheels/project``;
3. its dependencies, and its ``[lab]`` extra's (JupyterLab shows the
   dashboard), as wheels for the base image's Python, glibc and machine into
   ``wheels/deps`` (containers here reach Debian's mirror, not PyPI); skipped
   while the requirements and the target are those of the last download, so
   the versions stay those of the first build until either changes;
4. ``docker build`` of ``Dockerfile`` in this folder: Docker's layer cache
   skips every step whose inputs are unchanged (the wheel build is
   reproducible, so an unchanged checkout gives the same bytes).

Usage: quickstart/daemon/build.py [--tag TAG] [--no-cache] (every layer anew,
for Debian's updates). The Python that builds the
wheel is ``$SANDKASTEN_VENV/bin/python`` (default: the checkout's .venv), the
one ``scripts/dev`` sets up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WHEELS = HERE / "wheels"
TAG = "sandkasten/daemon:latest"
EXTRAS = ("lab",)  # the dashboard: JupyterLab
BASE = "sandkasten/layers:base"  # Debian, python3, no runner: what `sandkasten images build` starts every image from
PROBE = (
    "import json, platform, sys; "
    "print(json.dumps([sys.version_info[0], sys.version_info[1], platform.libc_ver()[1], platform.machine()]))"
)


def venv_python() -> str:
    venv = Path(os.environ.get("SANDKASTEN_VENV") or ".venv")
    python = (ROOT / venv if not venv.is_absolute() else venv) / "bin" / "python"
    return str(python) if python.exists() else sys.executable


def run(*command: str, **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **options)  # type: ignore[call-overload, no-any-return]


def target_options() -> list[str]:
    """pip's options for wheels that install on the base image's python3 (Debian's) on this machine."""
    major, minor, glibc, machine = json.loads(
        run("docker", "run", "--rm", "--entrypoint", "python3", BASE, "-c", PROBE, capture_output=True).stdout
    )
    glibc_minor = int(glibc.split(".")[1])
    # pip does not widen a manylinux_2_N platform to the older ones a wheel may name: list them all.
    platforms = ["manylinux_2_%d_%s" % (n, machine) for n in range(glibc_minor, 4, -1)]
    platforms += ["manylinux2014_" + machine, "manylinux2010_" + machine, "manylinux1_" + machine, "linux_" + machine]
    options = ["--only-binary=:all:", "--python-version", "%d.%d" % (major, minor), "--implementation", "cp"]
    for abi in ("cp%d%d" % (major, minor), "abi3", "none"):
        options += ["--abi", abi]
    for platform in [*platforms, "any"]:
        options += ["--platform", platform]
    return options


def build_project_wheel(python: str) -> Path:
    project = WHEELS / "project"
    shutil.rmtree(project, ignore_errors=True)
    run(python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(project), str(ROOT))
    (wheel,) = project.glob("sandkasten_kernel-*.whl")
    return wheel


def requirements_of(wheel: Path, extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """The wheel's Requires-Dist: its own and those of ``extras``."""
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    wanted = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            requirement, _, marker = line.split(":", 1)[1].partition(";")
            extra = re.fullmatch(r"""\s*extra\s*==\s*["']([\w.-]+)["']\s*""", marker)
            if not marker or (extra and extra.group(1) in extras):
                wanted.append(requirement.strip())
    return wanted


def download_deps(python: str, wheel: Path) -> bool:
    """Fill wheels/deps for ``wheel``'s requirements; False when the last download already did."""
    deps, stamp = WHEELS / "deps", WHEELS / "deps.stamp"
    inputs = {"requires": requirements_of(wheel), "target": target_options()}
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
    if deps.is_dir() and stamp.exists() and stamp.read_text() == digest:
        return False
    shutil.rmtree(deps, ignore_errors=True)
    stamp.unlink(missing_ok=True)
    deps.mkdir(parents=True)
    (WHEELS / "requirements.txt").write_text("\n".join(inputs["requires"]) + "\n")
    run(
        python, "-m", "pip", "download", "-q", "-d", str(deps), *inputs["target"],
        "-r", str(WHEELS / "requirements.txt"),
    )  # fmt: skip
    stamp.write_text(digest)
    return True


def build(tag: str = TAG, no_cache: bool = False) -> None:
    python = venv_python()
    step = time.monotonic()

    def done(what: str) -> None:
        nonlocal step
        print("build: %s (%.1f s)" % (what, time.monotonic() - step), flush=True)
        step = time.monotonic()

    run(python, "-m", "sandkasten_server.cli", "images", "build")
    done("sandbox images current")
    wheel = build_project_wheel(python)
    done("project wheel %s" % wheel.name)
    done("dependencies downloaded" if download_deps(python, wheel) else "dependencies unchanged")
    run("docker", "build", *(["--no-cache"] if no_cache else []), "-t", tag, "--build-arg", "BASE=" + BASE, str(HERE))
    done("image %s" % tag)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=TAG, help="the image's name (default %(default)s)")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every layer (Debian's updates, say)")
    options = parser.parse_args()
    build(options.tag, options.no_cache)
