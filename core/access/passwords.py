"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.errors import UserError

MIN_LENGTH = 8
_HASHER = PasswordHasher()


@cache
def _dummy() -> str:
    """A hash verified against when the user is unknown, so a wrong name takes as long as a wrong password."""
    return _HASHER.hash("not a password of anyone")


def check_new(password: str) -> None:
    """Refuse a password that is too short to choose."""
    if len(password) < MIN_LENGTH:
        raise UserError(f"The password is shorter than {MIN_LENGTH} characters; choose a longer one.")


def hash_password(password: str) -> str:
    """The Argon2id hash of `password` (salted; the encoded string holds the parameters)."""
    check_new(password)
    return _HASHER.hash(password)


def verify(encoded: str | None, password: str) -> bool:
    """Whether `password` matches the hash `encoded` (None: no such user; the same work is done anyway)."""
    try:
        return _HASHER.verify(encoded or _dummy(), password) and encoded is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
