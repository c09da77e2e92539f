"""Obtain the twelve C-MAPSS files for setup: copy them from a folder or download NASA's zip.

NASA's download is an outer zip that wraps ``CMAPSSData.zip``, which holds
``train_FD00x.txt``, ``test_FD00x.txt`` and ``RUL_FD00x.txt`` (plus a readme). The
download streams to a temporary file with progress and is unpacked, streaming, within the limits of
:mod:`core.data.archives` (member count, sizes, nesting); it is checked for all twelve files, and only
then are they copied out (by base name, so no member can write outside `dest_dir`).
"""

from __future__ import annotations

import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from core import config
from core.data.archives import Blob, Limits, Unpacker
from core.data.cmapss import SUBSETS
from core.errors import UserError

Progress = Callable[[float, str], None]

EXPECTED_FILES: list[str] = [f"{kind}_{subset}.txt" for kind in ("train", "test", "RUL") for subset in SUBSETS]
"""The twelve files a complete C-MAPSS copy holds (each may also come gzip-compressed)."""

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def default_dest() -> Path:
    """Where ``python -m core fetch`` puts the files by default: ``$PM_HOME/downloads/cmapss``."""
    return config.paths().downloads / "cmapss"


def _find_in_folder(folder: Path) -> dict[str, Path]:
    found = {}
    for name in EXPECTED_FILES:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
    return found


def _copy_from_folder(folder: Path, dest: Path, progress: Progress | None) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"The data folder {folder} does not exist.")
    found = _find_in_folder(folder)
    missing = [n for n in EXPECTED_FILES if n not in found]
    if missing:
        raise UserError(f"The data folder {folder} lacks {', '.join(missing)}; it needs all twelve C-MAPSS files.")
    copied = []
    for n, name in enumerate(EXPECTED_FILES):
        if progress is not None:
            progress(n / len(EXPECTED_FILES), f"Copying {found[name].name}")
        target = dest / found[name].name
        if found[name].resolve() != target.resolve():
            shutil.copyfile(found[name], target)
        copied.append(target)
    return copied


def _download(url: str, into: Path, progress: Progress | None) -> None:
    hint = "Set PM_DATA_DIR to a folder with the files or upload them on the Data page."
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, into.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if progress is not None:
                    fraction = 0.9 * done / total if total else 0.0
                    progress(fraction, f"Downloaded {done / 2**20:.1f} MB" + (f" of {total / 2**20:.1f} MB" if total else ""))
    except urllib.error.HTTPError as err:
        raise UserError(f"Could not download {url}: HTTP {err.code} {err.reason}. {hint}") from err
    except urllib.error.URLError as err:
        raise UserError(f"Could not download {url}: {err.reason}. {hint}") from err
    except (OSError, ValueError) as err:
        raise UserError(f"Could not download {url}: {err}. {hint}") from err


def _extract(zip_path: Path, url: str, dest: Path) -> list[Path]:
    """Unpack the download within the limits of :mod:`core.data.archives` and copy the twelve files to `dest`."""
    with tempfile.TemporaryDirectory(dir=dest) as spool:
        unpacker = Unpacker(Path(spool), Limits.from_env())
        leaves = unpacker.expand(f"The download from {url}", zip_path.name, url, Blob(path=zip_path))
        found: dict[str, Path] = {}
        for leaf in leaves:
            if leaf.filename in EXPECTED_FILES and leaf.blob.path is not None:
                found.setdefault(leaf.filename, leaf.blob.path)
        missing = [n for n in EXPECTED_FILES if n not in found]
        if missing:
            raise UserError(f"The download from {url} lacks {', '.join(missing)}; it is not NASA's complete "
                            "C-MAPSS zip.")
        written = []
        for name in EXPECTED_FILES:
            target = dest / name
            shutil.copyfile(found[name], target)
            written.append(target)
    return written


def fetch(dest_dir: str | Path, source: str | Path | None = None, progress: Progress | None = None) -> dict:
    """Put the twelve C-MAPSS files into `dest_dir` and return ``{"dest", "source", "files"}``.

    `source` is a folder or a URL; by default ``PM_DATA_DIR`` when set, else
    ``config.cmapss_url()``. Raises :class:`UserError` (one sentence) when the folder lacks
    files, the download fails, or the zip does not hold all twelve files.
    """
    dest = Path(dest_dir).expanduser().resolve()
    dest.mkdir(parents=True, exist_ok=True)
    if source is None:
        source = config.data_dir() or config.cmapss_url()
    text = str(source)
    if "://" not in text:
        files = _copy_from_folder(Path(text).expanduser().resolve(), dest, progress)
    else:
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            zip_path = Path(tmp) / "cmapss.zip"
            _download(text, zip_path, progress)
            if progress is not None:
                progress(0.95, "Extracting the C-MAPSS files")
            files = _extract(zip_path, text, dest)
    if progress is not None:
        progress(1.0, "Done")
    return {"dest": str(dest), "source": text, "files": [str(p) for p in files]}
