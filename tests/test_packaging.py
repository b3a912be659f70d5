"""Packaging as the ecosystem's tools do it: the sdist, a wheel built from it, installed into a fresh venv.

The sdist is built from this checkout (the build hook builds the dashboard if its sources are newer than
the build); pip then builds the wheel from the sdist alone, in an isolated build environment with neither
JupyterLab nor node; the wheel goes, with its ``[lab]`` extra and every dependency from the package index, into a new
venv, where Jupyter must find the server extension and the dashboard enabled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandkasten_kernel.engine.images import IMAGES

# The sdist's build runs npm where the dashboard's build is older than its sources (a fresh checkout).
pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[1]
VERSION = "0.1.0"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Installed:
    sdist: Path
    venv: Path
    env: dict[str, str]  # only the venv's bin on PATH, a HOME of its own: nothing of this environment leaks in

    def run(self, *command: str) -> str:
        """``command`` (a script of the venv) run to success; its output with stderr, without colours."""
        done = subprocess.run(
            [str(self.venv / "bin" / command[0]), *command[1:]],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )
        output = ANSI.sub("", done.stdout + done.stderr)
        assert done.returncode == 0, output
        return output


def run(command: list[str], **options: Any) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, **options)
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("packaging")
    # The sdist with this environment's build requirements (the test extra has them): it is not under test.
    # `jupyter labextension build` must be this interpreter's.
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    sdist_build = [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(work / "sdist")]
    run([*sdist_build, str(ROOT)], env={**os.environ, "PATH": path})
    (sdist,) = (work / "sdist").glob("sandkasten_kernel-*.tar.gz")

    # The wheel from the sdist alone, in pip's isolated build environment (no JupyterLab there: the dashboard
    # comes prebuilt) with no node on PATH; never a wheel pip cached from an identical sdist.
    python_only = {**os.environ, "PATH": os.path.dirname(sys.executable)}
    assert shutil.which("node", path=python_only["PATH"]) is None
    wheel_build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(work / "wheel")]
    run([*wheel_build, str(sdist)], env=python_only)
    (wheel,) = (work / "wheel").glob("sandkasten_kernel-*.whl")

    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    # Dependencies resolve from the index; --no-compile only skips writing .pyc files.
    pip = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-compile"]
    run([*pip, "%s[lab]" % wheel])
    home = work / "home"
    home.mkdir()
    docker = {"DOCKER_HOST": os.environ["DOCKER_HOST"]} if "DOCKER_HOST" in os.environ else {}
    return Installed(sdist, venv, {"PATH": str(venv / "bin"), "HOME": str(home), **docker})


def test_the_sdist_carries_what_the_wheel_build_needs(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    needed = {
        "pyproject.toml",
        "README.md",
        "labextension/package.json",
        "labextension/package-lock.json",
        "labextension/tsconfig.json",
        "labextension/install.json",
        "labextension/src/index.ts",
        "labextension/style/index.css",
        "labextension/built/package.json",
        "jupyter-config/jupyter_server_config.d/sandkasten.json",
        "runner/sandkasten_runner/protocol.py",
        "server_extension/sandkasten_server/openapi.yaml",
        *("images/%s/Dockerfile" % name for name in [*IMAGES, "runner", "custom-runner"]),
    }
    assert needed <= names, needed - names
    assert any(name.startswith("labextension/built/static/remoteEntry.") for name in names)
    assert not [name for name in names if name.startswith(("labextension/node_modules/", "labextension/lib/"))]
    assert not [name for name in names if name.startswith(("tests/", ".hypothesis/", "sdk/"))]


def config_section(listing: str, path: Path) -> str:
    """The part of a ``jupyter ... list`` output about ``path`` (up to the next path it names)."""
    return re.split(r"\n(?=Config dir: |/)", listing.split(str(path), 1)[1], maxsplit=1)[0]


def test_the_server_extension_and_the_dashboard_are_enabled(installed: Installed) -> None:
    servers = installed.run("jupyter", "server", "extension", "list")
    enabled = r"sandkasten_server enabled\s+- Validating sandkasten_server\.\.\.\s+sandkasten_server %s OK"
    assert re.search(enabled % re.escape(VERSION), config_section(servers, installed.venv / "etc" / "jupyter")), servers
    labs = installed.run("jupyter", "labextension", "list")
    enabled = r"@sandkasten/labextension v%s enabled OK \(python, sandkasten-kernel\)"
    assert re.search(enabled % re.escape(VERSION), config_section(labs, installed.venv / "share")), labs


def test_the_command_runs_from_the_wheel(installed: Installed) -> None:
    assert installed.run("sandkasten", "--version").strip() == "sandkasten %s" % VERSION


@pytest.mark.docker
def test_images_status_from_the_wheel(installed: Installed, docker_client: Any) -> None:
    """The Dockerfiles travel in the wheel: the installed command hashes them to what the images carry."""
    rows = json.loads(installed.run("sandkasten", "images", "status", "--json"))
    assert [(row["tag"], row["state"]) for row in rows] == [(spec.tag, "current") for spec in IMAGES.values()]
