"""Schemathesis hooks (loaded through $SCHEMATHESIS_HOOKS): the API's two non-JSON media types."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-tar")
def to_tar(context: Any, value: Any) -> bytes:
    """A generated body, packed as one file of a tar archive (what an upload carries)."""
    data = value if isinstance(value, bytes) else str(value).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("fuzzed.bin")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@schemathesis.deserializer("application/x-ndjson")
def from_ndjson(context: Any, response: Any) -> Any:
    """A stream of events is checked by its last event (result, done or error)."""
    lines = response.content.splitlines()
    return json.loads(lines[-1]) if lines else None
