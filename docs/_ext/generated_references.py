"""A Sphinx extension: pages that hold a ```` ```{generated-reference} NAME ```` block get the reference NAME there.

The block is replaced with the generated Markdown before the page is parsed, so the references are
ordinary sections (in the page's table of contents, linkable). A page naming an unknown reference,
and a trait without help text, are build warnings (errors under ``-W``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import config_reference
import openapi_reference
from sphinx.application import Sphinx
from sphinx.util import logging

log = logging.getLogger(__name__)
BLOCK = re.compile(r"^```\{generated-reference\} *(\S+) *\n```$", flags=re.M)


@dataclass(frozen=True)
class Reference:
    """How to make a reference, and the files it is made from."""

    markdown: Callable[[], str]
    sources: Callable[[], list[Path]]


REFERENCES = {
    "openapi": Reference(openapi_reference.reference, lambda: [openapi_reference.OPENAPI]),
    "configuration": Reference(config_reference.reference, config_reference.sources),
}


def _fill(app: Sphinx, docname: str, source: list[str]) -> None:
    def generated(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in REFERENCES:
            log.warning("%s: no generated reference %r (known: %s)", docname, name, ", ".join(REFERENCES))
            return ""
        reference = REFERENCES[name]
        for path in reference.sources():
            app.env.note_dependency(str(path))  # a change there rebuilds this page
        return reference.markdown()

    source[0] = BLOCK.sub(generated, source[0])


def _check_help(app: Sphinx) -> None:
    for trait in config_reference.lacking_help():
        log.warning("configuration reference: %s has no help text", trait)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("source-read", _fill)
    app.connect("builder-inited", _check_help)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
