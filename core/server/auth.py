"""The API's bearer token: from ``PM_API_TOKEN``, or generated once and kept in ``$PM_HOME/api_token`` (mode 0600).

Requests are checked with a constant-time comparison (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from core import config
from core.errors import UserError

TOKEN_FILE = "api_token"
ENV_TOKEN = "PM_API_TOKEN"
MIN_TOKEN_LENGTH = 16


def token_path() -> Path:
    """Where a generated token is kept: ``$PM_HOME/api_token``."""
    return config.paths().home / TOKEN_FILE


def _read(path: Path) -> str:
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < MIN_TOKEN_LENGTH:
        raise UserError(f"The API token file {path} holds no usable token (at least {MIN_TOKEN_LENGTH} "
                        "characters); delete it and restart the server to generate a new one.")
    return token


def _generate(path: Path) -> str:
    """Write a new random token to `path`, readable and writable by the owner only; keep one written meanwhile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def api_token() -> str:
    """The token requests must present: ``PM_API_TOKEN`` if set, else the stored one (generated on first use)."""
    from_env = os.environ.get(ENV_TOKEN, "").strip()
    if from_env:
        if len(from_env) < MIN_TOKEN_LENGTH:
            raise UserError(f"{ENV_TOKEN} is shorter than {MIN_TOKEN_LENGTH} characters; use a longer secret.")
        return from_env
    path = token_path()
    if path.exists():
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return _read(path)
    return _generate(path)


def token_source() -> str:
    """Where the token comes from, for the Home page: the variable's name or the file's path."""
    return ENV_TOKEN if os.environ.get(ENV_TOKEN, "").strip() else str(token_path())


def bearer_ok(header: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>`` (constant-time comparison)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())
