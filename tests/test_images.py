"""The image build: parents first, skip when current, and it works from a wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from sandkasten_kernel.engine.errors import ImageError
from sandkasten_kernel.engine.images import IMAGES, ImageBuilder, hash_sources, layer_files, runner_files
from tests.conftest import build_wheel

ROOT = Path(__file__).resolve().parents[1]


def sandkasten(*args: str) -> subprocess.CompletedProcess[str]:
    """The command with a configuration of its own, whose state directory holds no added images (and is never
    made: the machine's own state directories are not this test's)."""
    with tempfile.TemporaryDirectory(prefix="sk-images-") as folder:
        config = Path(folder, "sandkasten.yaml")
        config.write_text("state_dir: %s\n" % Path(folder, "state"))
        return subprocess.run(
            [sys.executable, "-m", "sandkasten_server.cli", *args],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "SANDKASTEN_CONFIG": str(config)},
        )


def test_parents_build_first_and_unknown_names_are_refused() -> None:
    assert [spec.name for spec in ImageBuilder._ordered(["node"])] == ["base", "node"]
    assert [spec.name for spec in ImageBuilder._ordered(["python", "base", "node"])] == ["base", "python", "node"]
    with pytest.raises(ImageError, match="unknown image 'ruby'"):
        ImageBuilder._ordered(["ruby"])


def test_the_hash_covers_dockerfile_runner_and_parent() -> None:
    runner = runner_files()
    names = [name for _, name in runner]
    assert "Dockerfile" in names and "sandkasten_runner/shell.py" in names
    assert hash_sources(runner, "layers-a") != hash_sources(runner, "layers-b")
    assert hash_sources(layer_files(IMAGES["python"]), "p") != hash_sources(layer_files(IMAGES["node"]), "p")


def test_a_rebuild_of_current_images_skips_them(docker_client: Any) -> None:
    build = sandkasten("images", "build")
    assert build.returncode == 0, build.stderr
    assert build.stdout.count("is current") == 2 * len(IMAGES)  # the layers and the runner on top
    assert "every image was current" in build.stdout
    status = sandkasten("images", "status")
    assert status.returncode == 0
    assert status.stdout.split() == [
        "TAG",
        "STATE",
        *(item for spec in IMAGES.values() for item in (spec.tag, "current")),
    ]
    listed = sandkasten("images", "status", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(row["name"], row["tag"], row["state"]) for row in rows] == [
        (spec.name, spec.tag, "current") for spec in IMAGES.values()
    ]
    assert all(row["id"].startswith("sha256:") and row["size_bytes"] > 0 for row in rows), rows


def test_bad_arguments_are_clear_errors() -> None:
    result = sandkasten("images", "build", "ruby")
    assert result.returncode == 1
    assert "unknown image 'ruby'" in result.stderr and "Traceback" not in result.stderr


def test_the_wheel_carries_the_image_sources(tmp_path: Path, docker_client: Any) -> None:
    wheel = build_wheel(ROOT, tmp_path, "sandkasten_kernel-*.whl")
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(unpacked)
    assert "sandkasten_kernel/engine/image_sources/base/Dockerfile" in names
    assert "sandkasten_kernel/engine/image_sources/custom-runner/Dockerfile" in names  # for `images add`
    assert "sandkasten_runner/protocol.py" in names
    # The server extension, its OpenAPI document, and the config that enables it in Jupyter Server.
    assert "sandkasten_server/openapi.yaml" in names
    enabling = [n for n in names if n.endswith(".data/data/etc/jupyter/jupyter_server_config.d/sandkasten.json")]
    assert len(enabling) == 1
    assert json.loads(unpacked.joinpath(enabling[0]).read_text()) == {
        "ServerApp": {"jpserver_extensions": {"sandkasten_server": True}}
    }
    # From the unpacked wheel alone, the sources hash to what the images carry.
    probe = (
        "import json; from sandkasten_kernel.engine import images; from sandkasten_kernel.engine.docker_backend"
        " import connect; print(json.dumps([str(images.sources_dir()), images.ImageBuilder(connect()).status()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(unpacked)},
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sources, rows = json.loads(result.stdout)
    assert sources.startswith(str(unpacked))
    assert all(row["current"] for row in rows), rows
