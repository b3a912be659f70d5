"""Credentials of the E2B surface: the API key the SDKs send, and each sandbox's access token.

The API key is the caller's Sandkasten (Jupyter) token, or ``e2b_`` followed by
that token's bytes in hex: some SDK versions accept only keys that look like
``e2b_<hex>``. The server's own identity provider checks it, so whoever the
token names owns what the call makes.

A sandbox's access token (``envdAccessToken``) is an HMAC of its id under a
key kept in the state directory: the data plane, which names a sandbox by a
header, takes it as proof that the caller was given the sandbox. Nothing is
stored per sandbox, and tokens stay valid across restarts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets

KEY_FILE = "e2b-token.key"
E2B_KEY_PREFIX = "e2b_"


def token_from_api_key(api_key: str) -> str:
    """The Sandkasten token an ``X-API-Key`` carries (``e2b_<hex>`` unwrapped, anything else as is)."""
    if api_key.startswith(E2B_KEY_PREFIX):
        with contextlib.suppress(ValueError):
            return bytes.fromhex(api_key[len(E2B_KEY_PREFIX) :]).decode("utf-8")
    return api_key


def api_key_for(token: str) -> str:
    """The ``e2b_<hex>`` form of a Sandkasten token, for SDKs that check a key's shape."""
    return E2B_KEY_PREFIX + token.encode("utf-8").hex()


class SandboxTokens:
    """Access tokens for sandboxes, from one secret key."""

    def __init__(self, state_dir: str) -> None:
        self._path = os.path.join(state_dir, KEY_FILE)
        self._key: bytes | None = None  # read (or made) at first use: the state directory exists by then

    def token(self, sandbox_id: str) -> str:
        if self._key is None:
            self._key = _load_or_make_key(self._path)
        digest = hmac.new(self._key, sandbox_id.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")

    def valid(self, sandbox_id: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.token(sandbox_id), token)


def _load_or_make_key(path: str) -> bytes:
    """The key at ``path``, made (owner-only) the first time."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as existing:
            key = existing.read()
        if len(key) >= 32:
            return key
        raise RuntimeError("%s is shorter than 32 bytes: remove it to make a new key" % path) from None
    key = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as created:
        created.write(key)
    return key
