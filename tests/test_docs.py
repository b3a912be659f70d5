"""The docs site builds with warnings as errors, and its references cover the API and the configuration whole."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandkasten_kernel.engine.config import SECTIONS, Sandkasten

ROOT = Path(__file__).resolve().parents[1]
OPENAPI = ROOT / "server_extension" / "sandkasten_server" / "openapi.yaml"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(out)]
    built = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def text_of(page: Path) -> str:
    """The page's text as a reader sees it (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def test_the_api_reference_names_every_route(site: Path) -> None:
    document = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    page = text_of(site / "rest-api.html")
    for path, item in document["paths"].items():
        for method in item.keys() & {"get", "put", "post", "delete", "patch"}:
            assert "%s %s" % (method.upper(), path) in page
            assert item[method]["operationId"] in page
    for schema in document["components"]["schemas"]:
        assert schema in page


def test_the_configuration_reference_names_every_key(site: Path) -> None:
    page = text_of(site / "configuration.html")
    for name in Sandkasten.class_own_traits(config=True):
        assert "c.Sandkasten.%s" % name in page
    for section, cls in SECTIONS.items():
        for name in cls.class_own_traits(config=True):
            assert "%s.%s" % (section, name) in page
            assert "c.%s.%s" % (cls.__name__, name) in page
    assert "c.SandkastenApp.sandkasten_config" in page
