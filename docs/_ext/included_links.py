"""A Sphinx extension: links in files included from elsewhere in the repository work in the docs.

``sdk/python/README.md`` links to ``../../README.md``; included into ``docs/sdk-python.md`` that
target is no page. A link to a repository file that is a docs page (``PAGES``) now points to
that page, as does one to a page in ``docs/`` itself (``../../docs/snapshots.md``); a link to
any other file of the repository becomes its text (there is no hosted source to link to).
Links to the web and within the page stay as they are.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)\s]+)\)")  # [text](target), not an image
PAGES = {  # repository file -> the docs page that shows it (the pages are all in docs/ itself)
    "README.md": "index.md",
    "sdk/python/README.md": "sdk-python.md",
    "sdk/typescript/README.md": "sdk-typescript.md",
    "runner/PROTOCOL.md": "runner-protocol.md",
}


def rewrite(text: str, directory: Path) -> str:
    """``text`` (Markdown from a file in ``directory``) with its links to repository files made fit for the docs."""

    def link(match: re.Match[str]) -> str:
        label, target = match.groups()
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        file, _, anchor = target.partition("#")
        path = (directory / file).resolve()
        if not path.is_relative_to(ROOT):
            return match.group(0)
        page = PAGES.get(path.relative_to(ROOT).as_posix())
        if page is None and path.parent == DOCS and path.suffix == ".md":
            page = path.name  # a docs page itself
        return "[%s](%s%s)" % (label, page, "#" + anchor if anchor else "") if page else label

    return LINK.sub(link, text)


def _included(app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    directory = (Path(app.srcdir) / relative_path).parent
    if not directory.resolve().is_relative_to(Path(app.srcdir).resolve()):
        content[0] = rewrite(content[0], directory)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("include-read", _included)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
