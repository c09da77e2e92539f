"""Unpack zip and gzip sources into plain files, streaming and within limits, before anything is parsed.

A source (a path or uploaded bytes) is a :class:`Blob`. :class:`Unpacker` turns it into leaf files: zip
members and gunzipped content are copied in 1 MB chunks into a spool folder, counting the bytes actually
produced (a member whose header understates its size is stopped at the limit, never read whole into
memory). Nested zips are expanded with an explicit work list, not recursion. Limits, each with an
environment override:

- ``PM_MAX_FILE_MB`` (default 200): one file, compressed or unpacked;
- ``PM_MAX_UNPACKED_MB`` (default 500): everything unpacked from zip and gzip files in one load;
- ``PM_MAX_ARCHIVE_MEMBERS`` (default 1,000): entries of all zip files in one load;
- ``PM_MAX_ARCHIVE_DEPTH`` (default 3): zips inside zips (NASA's download nests two).

Every refusal is a :class:`UserError` naming the file and the limit.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.config import env_number
from core.data.cmapss import parse_file_name
from core.errors import UserError

CHUNK = 1 << 20
"""Bytes read or written at a time while unpacking and hashing."""
DEFAULT_MAX_FILE_MB = 200
DEFAULT_MAX_UNPACKED_MB = 500
DEFAULT_MAX_MEMBERS = 1_000
DEFAULT_MAX_DEPTH = 3
CENTRAL_ENTRY_BYTES = 1_024
"""Largest average size of one central-directory entry accepted (a 1,000-entry zip may list 1 MB), so a
directory that claims few entries but holds millions is refused before :mod:`zipfile` parses it."""
KNOWN_SUFFIXES = (".txt", ".txt.gz", ".csv", ".csv.gz", ".parquet", ".zip", ".gz")


class Cancelled(UserError):
    """The work was stopped by its caller (e.g. the page that started it was closed); nothing was written."""


@dataclass(frozen=True)
class Limits:
    """The limits of one load, read from the environment by :meth:`from_env`."""

    file_bytes: int
    unpacked_bytes: int
    members: int
    depth: int

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            file_bytes=int(env_number("PM_MAX_FILE_MB", DEFAULT_MAX_FILE_MB, 0,
                                      meaning="the largest file loaded, in megabytes") * 2**20),
            unpacked_bytes=int(env_number("PM_MAX_UNPACKED_MB", DEFAULT_MAX_UNPACKED_MB, 0,
                                          meaning="the most one archive may unpack to, in megabytes") * 2**20),
            members=int(env_number("PM_MAX_ARCHIVE_MEMBERS", DEFAULT_MAX_MEMBERS, 0, whole=True,
                                   meaning="the most entries one zip may hold")),
            depth=int(env_number("PM_MAX_ARCHIVE_DEPTH", DEFAULT_MAX_DEPTH, 0, whole=True,
                                 meaning="how deep zips may nest in zips")),
        )


def megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB"


@dataclass(frozen=True)
class Blob:
    """A file's content: a file on disk (`path`) or bytes in memory (`data`, e.g. an upload)."""

    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        return self.path.open("rb") if self.path is not None else io.BytesIO(self.data or b"")

    def size(self) -> int:
        return self.path.stat().st_size if self.path is not None else len(self.data or b"")

    def head(self, n: int) -> bytes:
        with self.open() as handle:
            return handle.read(n)


@dataclass
class Leaf:
    """A plain (not zip, not gzip) file to parse; `source` records where it came from."""

    label: str
    filename: str
    source: str
    blob: Blob


def is_zip(head: bytes) -> bool:
    return head.startswith((b"PK\x03\x04", b"PK\x05\x06"))


def wanted_file(name: str) -> bool:
    """A file worth reading in a folder or zip: NASA-named files and any CSV, Parquet or zip (not e.g. readme.txt)."""
    base = name.rsplit("/", 1)[-1]
    lower = base.lower()
    if base.startswith(".") or not lower.endswith(KNOWN_SUFFIXES):
        return False
    return parse_file_name(base).subset != "user" or lower.endswith((".csv", ".csv.gz", ".parquet", ".zip"))


def _central_directory(handle: BinaryIO) -> tuple[int, int] | None:
    """(entries, directory bytes) from the end-of-central-directory record (zip64 too), or None if absent."""
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    tail_len = min(size, 65_557)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) < at + 22:
        return None
    entries = int.from_bytes(tail[at + 10:at + 12], "little")
    directory = int.from_bytes(tail[at + 12:at + 16], "little")
    if (entries == 0xFFFF or directory == 0xFFFFFFFF) and at >= 20 and tail[at - 20:at - 16] == b"PK\x06\x07":
        handle.seek(int.from_bytes(tail[at - 12:at - 4], "little"))
        record = handle.read(56)
        if record[:4] == b"PK\x06\x06" and len(record) == 56:
            entries = int.from_bytes(record[32:40], "little")
            directory = int.from_bytes(record[40:48], "little")
    return entries, directory


class Unpacker:
    """Expands sources into :class:`Leaf` files under `spool`, counting members and bytes across one load.

    `cancelled` is asked between chunks; when it answers True, :class:`Cancelled` is raised.
    """

    def __init__(self, spool: Path, limits: Limits, cancelled: Callable[[], bool] | None = None) -> None:
        self.spool = spool
        self.limits = limits
        self.cancelled = cancelled
        self.unpacked = 0
        self.members = 0
        self._files = 0

    def check_cancelled(self) -> None:
        if self.cancelled is not None and self.cancelled():
            raise Cancelled("The work was stopped because the page that started it was closed; nothing was written.")

    def expand(self, label: str, filename: str, source: str, blob: Blob) -> list[Leaf]:
        """The plain files inside one source, in archive order; UserError for the whole source on any problem."""
        todo = [(label, filename, source, blob, 0)]
        leaves: list[Leaf] = []
        while todo:
            label, filename, source, blob, depth = todo.pop(0)
            self.check_cancelled()
            head = blob.head(4)
            if is_zip(head):
                if depth >= self.limits.depth:
                    raise UserError(f"{label} nests zip files more than {self.limits.depth} deep, the limit "
                                    "(PM_MAX_ARCHIVE_DEPTH); nothing was loaded.")
                todo[0:0] = [(*child, depth + 1) for child in self._zip_members(label, source, blob)]
            elif head.startswith(b"\x1f\x8b"):
                leaves.append(Leaf(label, filename, source, self._gunzip(label, blob)))
            elif filename.lower().endswith((".gz", ".zip")):
                suffix, kind = (".gz", "gzip") if filename.lower().endswith(".gz") else (".zip", "zip")
                raise UserError(f"{label} is named {suffix} but is not a {kind} file.")
            else:
                leaves.append(Leaf(label, filename, source, blob))
        return leaves

    def _spool_file(self) -> Path:
        self._files += 1
        return self.spool / f"unpacked-{self._files}"

    def _count(self, label: str, produced: int, added: int) -> None:
        """Count `added` unpacked bytes of `label` (`produced` so far) against the limits."""
        self.check_cancelled()
        self.unpacked += added
        if produced > self.limits.file_bytes:
            raise UserError(f"{label} unpacks to more than the {megabytes(self.limits.file_bytes)} limit for one "
                            "file (set PM_MAX_FILE_MB to raise it).")
        if self.unpacked > self.limits.unpacked_bytes:
            raise UserError(f"{label} takes the files of this load past the {megabytes(self.limits.unpacked_bytes)} "
                            "limit for everything unpacked from zip and gzip files (set PM_MAX_UNPACKED_MB to "
                            "raise it); nothing was loaded.")

    def _zip_members(self, label: str, source: str, blob: Blob) -> list[tuple[str, str, str, Blob]]:
        handle = blob.open()
        try:
            directory = _central_directory(handle)
            if directory is not None:
                entries, size = directory
                self.members += entries
                if self.members > self.limits.members or size > self.limits.members * CENTRAL_ENTRY_BYTES:
                    raise UserError(f"{label} holds more than the {self.limits.members:,} zip entries allowed in "
                                    "one load (set PM_MAX_ARCHIVE_MEMBERS to raise it); nothing was loaded.")
            try:
                archive = zipfile.ZipFile(handle)
                infos = [i for i in archive.infolist() if not i.is_dir()]
            except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError) as err:
                raise UserError(f"{label} is not a valid zip file: {err}.") from err
            children = []
            short = label.rsplit("/", 1)[-1]
            for info in infos:
                if not wanted_file(info.filename):
                    continue
                base = info.filename.rsplit("/", 1)[-1]
                member_label = f"{base} in {short}"
                if info.file_size > self.limits.file_bytes:
                    raise UserError(f"{member_label} is {megabytes(info.file_size)}, larger than the "
                                    f"{megabytes(self.limits.file_bytes)} limit for one file (set PM_MAX_FILE_MB "
                                    "to raise it).")
                target = self._copy_member(archive, info, member_label)
                children.append((member_label, base, f"{source}!{info.filename}", Blob(path=target)))
        finally:
            handle.close()
        if not children:
            raise UserError(f"{label} holds no C-MAPSS, CSV or Parquet files (e.g. train_FD001.txt).")
        return children

    def _copy_member(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> Path:
        target = self._spool_file()
        produced = 0
        try:
            with archive.open(info) as src, target.open("wb") as out:
                while chunk := src.read(CHUNK):
                    produced += len(chunk)
                    self._count(label, produced, len(chunk))
                    out.write(chunk)
        except RuntimeError as err:
            raise UserError(f"{label} is encrypted inside its zip file; only unencrypted zips can be read.") from err
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as err:
            raise UserError(f"{label} is corrupt inside its zip file: {err}.") from err
        return target

    def _gunzip(self, label: str, blob: Blob) -> Blob:
        """Decompress every gzip member of `blob` (NUL padding between or after members is ignored)."""
        target = self._spool_file()
        produced = 0
        inflater = zlib.decompressobj(wbits=31)
        in_member = False
        with blob.open() as src, target.open("wb") as out:
            while chunk := src.read(CHUNK):
                data = chunk
                while data:
                    if not in_member:
                        data = data.lstrip(b"\x00")
                        if not data:
                            break
                        in_member = True
                    try:
                        part = inflater.decompress(data, CHUNK)
                    except zlib.error as err:
                        raise UserError(f"{label} is a truncated or corrupt gzip file: {err}.") from err
                    produced += len(part)
                    self._count(label, produced, len(part))
                    out.write(part)
                    if inflater.eof:
                        data, inflater, in_member = inflater.unused_data, zlib.decompressobj(wbits=31), False
                    else:
                        data = inflater.unconsumed_tail
        if in_member:
            raise UserError(f"{label} is a truncated or corrupt gzip file: it ends before the end of its data.")
        return Blob(path=target)
