"""The users file, ``$PM_HOME/users.json`` (mode 0600): each user's role, password hash and API tokens.

- A user signs in to the dashboard with a password (Argon2id hash, :mod:`.passwords`; :func:`sign_in`, slowed
  per name and per client address by :mod:`.throttle`) or, with ``sso``, through the identity provider of
  ``st.login`` (the user's name is then the e-mail the provider gives);
- API tokens are random 256-bit secrets shown once; only their SHA-256 digests are stored (a digest of a
  random secret needs no slow hash), compared in constant time.

Every change is a read-modify-write under a lock file (``users.lock``), replaced atomically; reads are cached
by the file's identity, so a change made by the CLI reaches a running server at its next request.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from core import config
from core.access import passwords, throttle
from core.access.roles import Role
from core.data import names
from core.errors import UserError

USERS_FILE = "users.json"
TOKEN_PREFIX = "pmu_"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
_CACHE: dict[str, tuple[tuple[int, int, int], dict[str, User]]] = {}
_CACHE_LOCK = threading.Lock()
LOG = logging.getLogger("core.access")
WRONG_PASSWORD = "The name or the password is wrong."


@dataclass(frozen=True)
class Token:
    """An issued API token: its id (shown in listings) and the SHA-256 digest of the secret."""

    id: str
    sha256: str
    created: str


@dataclass(frozen=True)
class User:
    """One user: name, role, Argon2id password hash (None for sso users), whether the identity provider
    vouches for them, and their API tokens."""

    name: str
    role: Role
    password: str | None = None
    sso: bool = False
    tokens: tuple[Token, ...] = field(default_factory=tuple)
    created: str = ""

    def summary(self) -> dict[str, object]:
        """What ``users list`` shows: never a hash."""
        return {"name": self.name, "role": self.role.label, "sign_in": "sso" if self.sso else "password",
                "api_tokens": len(self.tokens), "created": self.created}


def users_path() -> Path:
    """``$PM_HOME/users.json``."""
    return config.paths().home / USERS_FILE


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse(path: Path) -> dict[str, User]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        users = {}
        for item in raw["users"]:
            user = User(name=str(item["name"]), role=Role[str(item["role"]).upper()], password=item.get("password"),
                        sso=bool(item.get("sso", False)), created=str(item.get("created", "")),
                        tokens=tuple(Token(**t) for t in item.get("tokens", [])))
            users[user.name] = user
        return users
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"The users file {path} cannot be read ({type(err).__name__}: {err}); fix or delete it "
                        "and add the users again with 'python -m core users add'.") from err


def load_users() -> dict[str, User]:
    """Every user by name (empty when the file does not exist)."""
    path = users_path()
    try:
        info = path.stat()
    except FileNotFoundError:
        return {}
    key = (info.st_ino, info.st_mtime_ns, info.st_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(str(path))
        if cached is not None and cached[0] == key:
            return dict(cached[1])
    users = _parse(path)
    with _CACHE_LOCK:
        _CACHE[str(path)] = (key, users)
    return dict(users)


def find(name: str) -> User | None:
    """The user called `name` (compared folded, :func:`core.data.names.fold`), or None."""
    return load_users().get(names.fold(name))


def _write(path: Path, users: dict[str, User]) -> None:
    records = []
    for user in users.values():
        record = asdict(user)
        record["role"] = user.role.label
        records.append(record)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "users": records}, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


@contextmanager
def _locked() -> Iterator[Path]:
    path = users_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name("users.lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    except PermissionError as err:
        raise UserError(f"The users file {path} cannot be written ({err.strerror}); run the command as the "
                        "server's user.") from err


def _change(edit: Callable[[dict[str, User]], dict[str, User]]) -> dict[str, User]:
    with _locked() as path:
        users = _parse(path) if path.exists() else {}
        changed = edit(users)
        _write(path, changed)
    return changed


def _existing(users: dict[str, User], name: str) -> User:
    if name not in users:
        known = ", ".join(sorted(users)) or "none yet"
        raise UserError(f"There is no user '{name}' (users: {known}).")
    return users[name]


def add_user(name: str, role: Role, password: str | None, sso: bool = False) -> User:
    """Add a user with a password, or an sso user (no password: the identity provider vouches for them); the name
    is normalised by :mod:`core.data.names` first."""
    name = names.normalise(name, names.USER)
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(f"'{name}' is not a usable user name: 1 to 64 letters, digits and . _ @ + -, starting "
                        "with a letter or digit.")
    if sso == (password is not None):
        raise UserError("Give a user either a password or sso sign-in, not both or neither.")
    user = User(name=name, role=role, password=None if password is None else passwords.hash_password(password),
                sso=sso, created=_now())

    def edit(users: dict[str, User]) -> dict[str, User]:
        if name in users:
            raise UserError(f"A user '{name}' exists already; change the role with 'users set-role'.")
        return {**users, name: user}

    _change(edit)
    return user


def remove_user(name: str) -> User:
    """Remove a user and their API tokens."""
    removed: list[User] = []

    def edit(users: dict[str, User]) -> dict[str, User]:
        removed.append(_existing(users, name))
        return {k: v for k, v in users.items() if k != name}

    _change(edit)
    return removed[0]


def set_role(name: str, role: Role) -> User:
    """Give a user another role (their tokens follow it)."""
    return _change(lambda users: {**users, name: replace(_existing(users, name), role=role)})[name]


def set_password(name: str, password: str) -> User:
    """Replace a user's password (an sso user gets password sign-in instead)."""
    encoded = passwords.hash_password(password)
    return _change(lambda users: {**users, name: replace(_existing(users, name), password=encoded, sso=False)})[name]


def authenticate(name: str, password: str) -> User | None:
    """The user if `password` is theirs, else None (an unknown name costs the same hashing work)."""
    user = find(name)
    encoded = user.password if user is not None else None
    return user if passwords.verify(encoded, password) else None


def sign_in(name: str, password: str, address: str | None, now: float | None = None) -> User:
    """A password sign-in of `name` from client `address` (None: this machine): the user, or UserError with the
    sentence to show. The attempt is admitted and counted first (:func:`.throttle.admit`), so parallel attempts
    beyond the throttle's allowance are refused before any password is checked; every refusal is logged as a
    warning with the name and the address as quoted data."""
    where = address or throttle.LOCAL
    try:
        attempt = throttle.admit(name, address, now)
    except throttle.Throttled as err:
        LOG.warning("Sign-in refused, too many failures (%.0f s to wait): name=%.200r address=%.200r",
                    err.wait_s, name, where)
        raise
    user = authenticate(name, password)
    if user is None:
        LOG.warning("Sign-in refused, wrong name or password: name=%.200r address=%.200r", name, where)
        raise UserError(WRONG_PASSWORD)
    throttle.succeeded(attempt)
    return user


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue_token(name: str) -> tuple[str, Token]:
    """A new API token for user `name`: (the secret, shown once and never stored; its record)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(id=secrets.token_hex(4), sha256=_digest(secret), created=_now())
    _change(lambda users: {**users, name: replace(_existing(users, name),
                                                  tokens=(*_existing(users, name).tokens, token))})
    return secret, token


def revoke_tokens(name: str) -> int:
    """Revoke every API token of user `name`; how many there were."""
    count: list[int] = []

    def edit(users: dict[str, User]) -> dict[str, User]:
        user = _existing(users, name)
        count.append(len(user.tokens))
        return {**users, name: replace(user, tokens=())}

    _change(edit)
    return count[0]


def user_for_token(secret: str) -> User | None:
    """The user an API token belongs to, or None; every stored digest is compared (constant time each)."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    digest = _digest(secret)
    found = None
    for user in load_users().values():
        for token in user.tokens:
            if hmac.compare_digest(token.sha256, digest):
                found = user
    return found
