"""Who calls the API: the bearer token names a user and so a role (:mod:`core.access.roles`).

- The server's admin token: ``PM_API_TOKEN``, or generated once and kept in ``$PM_HOME/api_token`` (mode 0600);
  it has the admin role (as before users existed, so existing callers keep working);
- a user's token (``python -m core users token NAME``): the role of that user in ``$PM_HOME/users.json``,
  read at each request, so a changed role or a removed user counts at once.

Tokens are compared in constant time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from core import config
from core.access import users
from core.access.roles import Role
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
    token = secrets.token_urlsafe(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    except OSError as err:
        raise UserError(f"No API token could be written to {path} ({err.strerror}); set {ENV_TOKEN} to a secret "
                        f"of at least {MIN_TOKEN_LENGTH} characters, or make PM_HOME writable.") from err
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


ADMIN_TOKEN_CALLER = "the server's admin token"


@dataclass(frozen=True)
class Caller:
    """Who presented a token: a user's name (or :data:`ADMIN_TOKEN_CALLER`) and their role."""

    name: str
    role: Role


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, given = header.partition(" ")
    return given.strip() or None if scheme.lower() == "bearer" else None


def bearer_ok(header: str | None, expected: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>`` (constant-time comparison)."""
    given = bearer(header)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def caller(header: str | None, admin_token: str) -> Caller | None:
    """Who the ``Authorization`` header names: the admin token, a user's token, or None (refused)."""
    given = bearer(header)
    if given is None:
        return None
    if hmac.compare_digest(given.encode(), admin_token.encode()):
        return Caller(ADMIN_TOKEN_CALLER, Role.ADMIN)
    user = users.user_for_token(given)
    return None if user is None else Caller(user.name, user.role)
