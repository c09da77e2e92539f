"""Local copies of registered bundles under ``$PM_HOME/models``, keyed by MLflow run id and content hash.

A version number is no identity: after the tracking database is lost, a new training registers v1 again.
A copy is therefore named ``<run id>-<first 16 hex digits of its content hash>``, the hash the registry
recorded (tag :data:`CONTENT_TAG`) when the version was registered; it is checked against that hash
every time it is handed out and fetched again from the artifact store when it does not match. Versions
registered before content hashes were recorded are named by run id alone and checked against their
bundle manifest (``manifest.json``: the SHA-256 of every file).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from core.errors import UserError

CONTENT_TAG = "content_sha256"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The SHA-256 of one file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_sha256(folder: Path) -> str:
    """One SHA-256 over every file of `folder`: each relative path and that file's SHA-256, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _manifest_intact(folder: Path) -> bool:
    """True unless `folder` has a manifest and a file it lists is missing or differs from its checksum."""
    path = folder / MANIFEST
    if not path.is_file():
        return True
    try:
        listed = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False
    if not isinstance(listed, dict):
        return False
    return all((folder / name).is_file() and file_sha256(folder / name) == digest for name, digest in listed.items())


def intact(folder: Path, expected: str | None) -> bool:
    """True if `folder` exists and holds exactly the content `expected` (or, without it, what its manifest lists)."""
    if not folder.is_dir():
        return False
    if expected:
        return content_sha256(folder) == expected
    return _manifest_intact(folder)


def folder_name(run_id: str, content: str | None) -> str:
    """The cache folder of a bundle: run id and the start of its content hash (run id alone without one)."""
    return f"{run_id}-{content[:16]}" if content else run_id


def _swap_in(fresh: Path, target: Path, expected: str | None) -> None:
    """Put the verified folder `fresh` at `target`, moving a stale copy there out of the way first (a good copy
    another thread or process put there meanwhile stays, as someone may be reading it)."""
    if intact(target, expected):
        return
    if target.exists():
        stale = target.parent / f".{target.name}.stale-{uuid.uuid4().hex}"
        try:
            target.rename(stale)
        except FileNotFoundError:
            pass
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(fresh, target)
    except OSError:
        if not intact(target, expected):  # another thread or process put its own verified copy there first
            raise


def cached_copy(root: Path, name: str, expected: str | None, fetch: Callable[[Path], Path], what: str) -> Path:
    """``root/name`` once it holds the bundle; fetched again when missing or not intact.

    `fetch(staging)` downloads the bundle into the empty folder `staging` and returns the folder it
    wrote; `what` names the bundle in messages ("model version 3 (run ...)"). A download that does not
    match `expected` (or its manifest) raises UserError: the artifact store itself holds a corrupt copy.
    """
    target = root / name
    if intact(target, expected):
        return target
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    except OSError as err:
        raise UserError(f"The bundle of {what} cannot be copied into the model cache {root} "
                        f"({err.strerror or err}).") from err
    try:
        fresh = fetch(staging)
        if not intact(fresh, expected):
            raise UserError(f"The stored artifacts of {what} are corrupt (they do not match what was registered): "
                            "roll back to another version or retrain.")
        try:
            _swap_in(fresh, target, expected)
        except OSError as err:
            raise UserError(f"The bundle of {what} cannot be put into the model cache {root} "
                            f"({err.strerror or err}).") from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
