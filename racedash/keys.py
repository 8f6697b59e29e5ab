"""The server secret: from config/env, else generated once and kept in the state directory.

Publish tokens and the team-login cookie are derived from it, so keeping it
stable across restarts keeps monitors' tokens and logins valid. It lives apart
from the recordings: deleting or losing recordings must not invalidate every
token. A secret an earlier version kept in the recordings directory is moved
over once.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

SECRET_FILE = ".racedash-secret"


def load_or_create_secret(configured: str, directory: Path, legacy_directory: Path | None = None) -> bytes:
    if configured:
        return configured.encode()
    path = directory / SECRET_FILE
    try:
        if legacy_directory is not None and not path.exists() and (legacy_directory / SECRET_FILE).is_file():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.replace(legacy_directory / SECRET_FILE, path)
            log.info("moved the server secret from the recordings directory to %s", directory)
        return _read_or_create(path)
    except OSError as exc:
        # An unwritable recordings dir must not stop the server (recordings
        # retry and report it): run with a secret for this process only.
        log.error("cannot keep the server secret in %s (%s); tokens and logins last until restart", path, exc)
        return secrets.token_urlsafe(32).encode()


def _read_or_create(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32).encode()
    # O_EXCL: two processes starting together agree on whichever wrote first.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    log.info("generated a server secret in %s (set RACEDASH_SECRET to manage it yourself)", path)
    return secret


def derive(secret: bytes, purpose: str) -> bytes:
    """An independent key for one purpose, so no two features share a key."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()
