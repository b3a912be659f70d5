"""The catalog of added images: their names, and what the configuration asks of it.

An image added with ``sandkasten images add`` (``custom_images``) is recorded in the
state directory's store (table ``images``). ``ImageCatalog`` answers the configuration's
two questions about it (``config.AddedImages``): which names are added images, and which
of them have a Jupyter kernel. It reads the store at each question, so an image the CLI
adds is known to a running server at once.
"""

from __future__ import annotations

import contextlib
import os
import re

from .config import Settings
from .errors import EngineError, StoreError
from .images import IMAGES
from .store import Store, store_path

NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}\Z")  # a Docker tag, as sandkasten/runtime:<name>


def check_name(name: str) -> None:
    """Refuse a name that is not a Docker tag of the rule's shape, or that is a built-in image's."""
    if not NAME_RULE.match(name):
        raise EngineError(
            "image names are 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or a digit; "
            "not %r" % name
        )
    if name in IMAGES:
        raise EngineError("%r is a built-in image; give the added one another name" % name)


class ImageCatalog:
    """The added images as the configuration names them (``config.AddedImages``)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def names(self) -> set[str]:
        return {row.name for row in self._store.list_images()}

    def has_kernel(self, name: str) -> bool:
        row = self._store.get_image(name)
        return row is not None and row.kernel


def attach_catalog(settings: Settings) -> None:
    """Let ``settings`` name the images added to its state directory (for code that runs no engine: the
    kernelspecs ``sandkasten serve`` allows, ``sandkasten kernelspec install``). A state directory without
    a store, or one this user cannot open, has none."""
    path = store_path(settings.server.state_dir)
    if settings.added is None and os.path.exists(path):
        with contextlib.suppress(StoreError):
            settings.added = ImageCatalog(Store(path))
