"""The identity of the embedded tracking database, so a deleted or replaced ``mlflow.db`` is reported, not
silently recreated under a running process.

When a process first opens an embedded (``sqlite:``) tracking database it stamps it with a random id
(one row in table :data:`TABLE`, written once per database), remembers that id, the file's device and
inode, and keeps the file open, so the inode cannot be reused while the process runs. Before each
registry use (:func:`check`) the file is looked at again: gone, another inode, or (after a change of
its modification time) another id is a UserError naming what happened. The URI and id are also put in
the environment (:data:`IDENTITY_ENV`), so a job this process starts refuses a database that is not the
one its starter used (:func:`expect_inherited`) instead of creating a new one. Other tracking URIs (an
MLflow server, a database server) keep their own storage and are not checked.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from core.errors import UserError

TABLE = "pm_tracking_identity"
IDENTITY_ENV = "PM_TRACKING_IDENTITY"
_TIMEOUT_S = 30.0


@dataclass
class _Seen:
    """What this process found when it adopted a database file."""

    path: Path
    inode: tuple[int, int]
    mtime_ns: int
    identity: str
    handle: int


_lock = threading.Lock()
_seen: dict[str, _Seen] = {}


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URI; None for any other URI or an in-memory database."""
    if not uri.startswith("sqlite:///"):
        return None
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


def _read_identity(path: Path) -> str:
    """The id stamped into `path`, or "" when it has none; opened read-only, so nothing is ever created."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=_TIMEOUT_S)
    try:
        row = con.execute(f"SELECT id FROM {TABLE}").fetchone()
    except sqlite3.OperationalError:
        return ""
    finally:
        con.close()
    return str(row[0]) if row else ""


def _stamp(path: Path) -> str:
    """Give `path` an id unless it has one (one row, written by whichever process comes first); return it."""
    found = _read_identity(path)
    if found:
        return found
    con = sqlite3.connect(path, timeout=_TIMEOUT_S)
    try:
        with con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL)")
            con.execute(f"INSERT OR IGNORE INTO {TABLE} (one, id) VALUES (1, ?)", (uuid.uuid4().hex,))
    except sqlite3.OperationalError:  # a read-only database or folder: unstamped, the inode still identifies it
        return ""
    finally:
        con.close()
    return _read_identity(path)


def expect_inherited(uri: str) -> None:
    """Before this process first opens `uri`: if the process that started it worked on the same database,
    raise UserError when that database is gone or was replaced since (nothing is created)."""
    inherited_uri, _, identity = os.environ.get(IDENTITY_ENV, "").rpartition(" ")
    path = sqlite_path(uri)
    if inherited_uri != uri or not identity or path is None:
        return
    if not path.is_file():
        raise UserError(f"The tracking database {path} is gone since the process that started this one opened it: "
                        "restore it, or restart the server to begin a new, empty model registry.")
    if _read_identity(path) != identity:
        raise UserError(f"The tracking database {path} was replaced since the process that started this one opened "
                        "it: restart the server to work on the new one.")


def adopt(uri: str) -> None:
    """Remember the database behind `uri` as the one this process works on (call once it exists)."""
    path = sqlite_path(uri)
    if path is None or not path.is_file():
        return
    identity = _stamp(path)
    handle = os.open(path, os.O_RDONLY)
    stat = os.fstat(handle)
    with _lock:
        previous = _seen.pop(uri, None)
        _seen[uri] = _Seen(path, (stat.st_dev, stat.st_ino), stat.st_mtime_ns, identity, handle)
    if previous is not None:
        os.close(previous.handle)
    if identity:
        os.environ[IDENTITY_ENV] = f"{uri} {identity}"


def check(uri: str) -> None:
    """Raise UserError when the database this process adopted for `uri` is gone or was replaced."""
    with _lock:
        seen = _seen.get(uri)
        if seen is None:
            return
        try:
            stat = os.stat(seen.path)
        except FileNotFoundError:
            raise UserError(f"The tracking database {seen.path} is gone (deleted or moved while this process ran): "
                            "restore it, or restart to begin a new, empty model registry.") from None
        replaced = (stat.st_dev, stat.st_ino) != seen.inode
        if not replaced and stat.st_mtime_ns != seen.mtime_ns:
            replaced = bool(seen.identity) and _read_identity(seen.path) != seen.identity
        if replaced:
            raise UserError(f"The tracking database {seen.path} was replaced while this process ran (it is not the "
                            "model registry it started with): restart to work on the new one.")
        seen.mtime_ns = stat.st_mtime_ns
