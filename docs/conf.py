"""Sphinx configuration of the Sandkasten docs: ``.venv/bin/sphinx-build -W docs docs/_build/html``."""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

project = "Sandkasten"
author = "the Sandkasten authors"
copyright = "the Sandkasten authors"

extensions = [
    "myst_parser",
    "generated_references",  # docs/_ext: the REST API and configuration references, built from their sources
    "included_links",  # docs/_ext: links in the repository's READMEs included here
]
myst_enable_extensions = ["fieldlist", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "pydata_sphinx_theme"
html_title = "Sandkasten"
html_sidebars: dict[str, list[str]] = {"**": []}  # the pages are few and flat: the header lists them
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_static_path: list[str] = []
