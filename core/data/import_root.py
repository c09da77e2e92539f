"""The one server folder the dashboard may read files from: ``PM_IMPORT_ROOT`` (unset: none).

The Data page's folder import reads only paths that resolve (symlinks followed) inside this folder. A
refusal reads the same whether the path exists or not, so the box cannot be used to probe the server's
files. The command line (``python -m core ingest PATH``) is the operator's own shell and is not limited.
"""

from __future__ import annotations

import os
from pathlib import Path

from core.errors import UserError


def import_root() -> Path | None:
    """``PM_IMPORT_ROOT`` resolved to an absolute path, or None when it is unset or empty."""
    raw = os.environ.get("PM_IMPORT_ROOT", "").strip()
    return Path(raw).expanduser().resolve() if raw else None


def _refusal(shown: str, root: Path) -> UserError:
    return UserError(f"{shown} is not inside the import folder {root}; only files under it can be read here.")


def inside(path: str | os.PathLike, root: Path) -> Path:
    """`path` (relative paths are taken under `root`) resolved with its symlinks, if that lies inside `root`.

    Raises :class:`UserError` otherwise, with a sentence that does not depend on whether the path exists.
    """
    given = Path(path).expanduser()
    candidate = given if given.is_absolute() else root / given
    resolved = Path(os.path.realpath(candidate))
    if resolved != root and not resolved.is_relative_to(root):
        raise _refusal(str(path), root)
    return resolved


def folder_entry(entry: Path, root: Path) -> Path:
    """A file found in a folder under `root`, resolved; UserError if it is a link leading out of `root`."""
    resolved = Path(os.path.realpath(entry))
    if not resolved.is_relative_to(root):
        raise _refusal(str(entry), root)
    return resolved
