"""Read, validate and load C-MAPSS files into the fleet store (shared by the CLI and the Data page).

Accepted sources: paths to NASA's whitespace ``.txt`` files (optionally ``.gz``), NASA's zip
(an outer zip wrapping ``CMAPSSData.zip``), folders, CSV or Parquet files with the 26
:data:`core.data.cmapss.COLUMNS` and a header, or ``(filename, bytes)`` pairs from an upload.
``RUL_FD00x`` files hold one positive whole number per line and fill ``rul_truth`` of
``test_FD00x`` whichever is loaded first.

Everything is parsed and validated before anything is written (see
:func:`core.data.store.validate_readings` for the checks and bounds); :func:`load` then writes
in one transaction. Content already loaded (same sha256 of the uncompressed bytes) is
reported as ``duplicate`` and skipped. Files larger than ``PM_MAX_FILE_MB`` megabytes
(default 200, compressed or not) are refused.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from core import config
from core.data import queries, store, writes
from core.data.cmapss import parse_file_name
from core.data.parsing import parse_readings, parse_rul
from core.errors import UserError

Source = str | os.PathLike | tuple[str, bytes]
Progress = Callable[[float, str], None]

_DEFAULT_MAX_MB = 200
_PARSE_WORKERS = 2
"""Files parsed at once: gunzip, sha256 and Arrow's CSV reader release the GIL, so reading
overlaps; progress is still reported from the calling thread only."""
_KNOWN_SUFFIXES = (".txt", ".txt.gz", ".csv", ".csv.gz", ".parquet", ".zip", ".gz")


def max_file_bytes() -> int:
    """The size limit for one file, from ``PM_MAX_FILE_MB`` (default 200 MB)."""
    raw = os.environ.get("PM_MAX_FILE_MB", str(_DEFAULT_MAX_MB))
    try:
        megabytes = float(raw)
    except ValueError as err:
        raise UserError(f"PM_MAX_FILE_MB is '{raw}', which is not a number of megabytes.") from err
    return int(megabytes * 1024 * 1024)


@dataclass
class FileReport:
    """What one file holds and whether it can be loaded.

    `status` is ``ok``, ``duplicate`` (the same content is already loaded or appears
    earlier in the batch) or ``error``; `message` is one sentence for the latter two.
    `role` is the dataset role (history, fleet or evaluation) or ``truth`` for ``RUL_`` files, whose
    `target` names the evaluation dataset and whose `rows` is the number of RUL values. `action` says
    what loading does: ``create`` a dataset or ``append`` to the in-service dataset `name`.
    """

    file: str
    name: str
    subset: str
    role: str
    source: str
    rows: int = 0
    engines: int = 0
    sha256: str = ""
    status: str = "ok"
    message: str = ""
    target: str | None = None
    action: str = "create"

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        return asdict(self)


@dataclass
class LoadSummary:
    """The outcome of :func:`load`: per-file reports and what was added to the store."""

    files: list[FileReport]
    datasets_added: list[str] = field(default_factory=list)
    readings_added: int = 0
    truth_rows_added: int = 0
    appended: list[dict] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Files skipped because their content was already loaded."""
        return sum(f.status == "duplicate" for f in self.files)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary."""
        return {
            "datasets_added": self.datasets_added,
            "readings_added": self.readings_added,
            "truth_rows_added": self.truth_rows_added,
            "appended": self.appended,
            "skipped": self.skipped,
            "files": [f.to_dict() for f in self.files],
        }


@dataclass
class _Parsed:
    report: FileReport
    arrays: dict[str, np.ndarray] | None = None
    ruls: list[int] | None = None


@dataclass
class _Context:
    limit: int
    known: dict[str, str]
    role: str | None = None
    dataset: str | None = None


@dataclass
class _Item:
    label: str
    filename: str
    source: str
    read: Callable[[], bytes]


# ----------------------------------------------------------------------------- sources


def _path_items(path: Path, limit: int) -> list[_Item]:
    if not path.exists():
        raise UserError(f"{path} does not exist.")
    if path.is_dir():
        chosen = [p for p in sorted(path.iterdir()) if p.is_file() and _wanted_in_folder(p.name)]
        if not chosen:
            raise UserError(f"The folder {path} holds no C-MAPSS, CSV, Parquet or zip files.")
        return [item for p in chosen for item in _path_items(p, limit)]
    if not path.is_file():
        raise UserError(f"{path} is not a regular file.")

    def read() -> bytes:
        size = path.stat().st_size
        if size > limit:
            raise UserError(f"{path} is {size / 2**20:.0f} MB, larger than the {limit / 2**20:.0f} MB limit for "
                            "one file (set PM_MAX_FILE_MB to raise it).")
        return path.read_bytes()

    return [_Item(label=str(path), filename=path.name, source=str(path.resolve()), read=read)]


def _wanted_in_folder(name: str) -> bool:
    """Folders contribute NASA-named files and any CSV, Parquet or zip file (not e.g. readme.txt)."""
    lower = name.lower()
    if not lower.endswith(_KNOWN_SUFFIXES):
        return False
    return parse_file_name(name).subset != "user" or lower.endswith((".csv", ".csv.gz", ".parquet", ".zip"))


def _items(sources: Iterable[Source], limit: int) -> Iterator[_Item | FileReport]:
    """Expand sources into readable items; a source that cannot be opened yields an error report."""
    for src in sources:
        if isinstance(src, tuple):
            filename, data = src
            yield _Item(label=filename, filename=filename, source=f"upload:{filename}",
                        read=lambda data=data: data)
            continue
        path = Path(src)
        try:
            yield from _path_items(path, limit)
        except UserError as err:
            yield _error_report(str(path), path.name, str(path), str(err))


def _error_report(label: str, filename: str, source: str, message: str) -> FileReport:
    fn = parse_file_name(filename)
    return FileReport(file=label, name=fn.name, subset=fn.subset, role=fn.role, source=source,
                      status="error", message=message, target=fn.target)


# ----------------------------------------------------------------------------- decoding


def _gunzip(data: bytes, label: str, limit: int) -> bytes:
    """Decompress all gzip members of `data`, refusing output beyond `limit` bytes."""
    parts: list[bytes] = []
    total = 0
    rest = data
    while rest.strip(b"\x00"):
        inflater = zlib.decompressobj(wbits=31)
        try:
            part = inflater.decompress(rest, limit + 1 - total)
        except zlib.error as err:
            raise UserError(f"{label} is a truncated or corrupt gzip file: {err}.") from err
        total += len(part)
        parts.append(part)
        if total > limit or inflater.unconsumed_tail:
            raise UserError(f"{label} unpacks to more than the {limit / 2**20:.0f} MB limit for one file "
                            "(set PM_MAX_FILE_MB to raise it).")
        if not inflater.eof:
            raise UserError(f"{label} is a truncated or corrupt gzip file: it ends before the end of its data.")
        rest = inflater.unused_data
    return b"".join(parts)


def _zip_members(data: bytes, label: str, source: str, limit: int) -> list[_Item]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise UserError(f"{label} is not a valid zip file: {err}.") from err
    items = []
    for info in infos:
        base = info.filename.rsplit("/", 1)[-1]
        lower = base.lower()
        if base.startswith(".") or not (lower.endswith(".zip") or (
                lower.endswith(_KNOWN_SUFFIXES) and parse_file_name(base).subset != "user")):
            continue
        member_label = f"{base} in {label.rsplit('/', 1)[-1]}"
        if info.file_size > limit:
            raise UserError(f"{member_label} is {info.file_size / 2**20:.0f} MB, larger than the "
                            f"{limit / 2**20:.0f} MB limit for one file (set PM_MAX_FILE_MB to raise it).")

        def read(info: zipfile.ZipInfo = info, member_label: str = member_label) -> bytes:
            try:
                return archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError) as err:
                raise UserError(f"{member_label} is corrupt inside its zip file: {err}.") from err

        items.append(_Item(label=member_label, filename=base, source=f"{source}!{info.filename}", read=read))
    if not items:
        raise UserError(f"{label} holds no C-MAPSS files (train_FD00x, test_FD00x, RUL_FD00x).")
    return items


def _parse_item(item: _Item, ctx: _Context) -> list[_Parsed]:
    """Read one item (expanding zips) into parsed results; errors become error reports.

    Content already in the store (by sha256) is reported as a duplicate without parsing it.
    """
    limit = ctx.limit
    fn = parse_file_name(item.filename)
    report = FileReport(file=item.label, name=fn.name, subset=fn.subset, role=fn.role,
                        source=item.source, target=fn.target)
    if fn.role != "truth":
        report.role = ctx.role or fn.role
        report.name = ctx.dataset or fn.name
    try:
        data = item.read()
        if len(data) > limit:
            raise UserError(f"{item.label} is {len(data) / 2**20:.0f} MB, larger than the {limit / 2**20:.0f} MB "
                            "limit for one file (set PM_MAX_FILE_MB to raise it).")
        if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
            members = _zip_members(data, item.label, item.source, limit)
            return [parsed for member in members for parsed in _parse_item(member, ctx)]
        if data.startswith(b"\x1f\x8b"):
            data = _gunzip(data, item.label, limit)
        elif item.filename.lower().endswith(".gz"):
            raise UserError(f"{item.label} is named .gz but is not a gzip file.")
        if not data or data.isspace():
            raise UserError(f"{item.label} is empty.")
        report.sha256 = hashlib.sha256(data).hexdigest()
        if report.sha256 in ctx.known:
            _skip_report(report, f"{item.label} has the same content as {ctx.known[report.sha256]}, which is "
                                 "already loaded; skipped.")
            return [_Parsed(report)]
        if fn.role == "truth":
            ruls = parse_rul(data, item.label)
            report.rows = report.engines = len(ruls)
            return [_Parsed(report, ruls=ruls)]
        arrays = parse_readings(data, item.label)
        report.rows = len(arrays["unit"])
        report.engines = int(np.unique(arrays["engine"]).size)
        return [_Parsed(report, arrays=arrays)]
    except UserError as err:
        report.status, report.message = "error", str(err)
        return [_Parsed(report)]


# ----------------------------------------------------------------------------- checks against the store


def _fail(parsed: _Parsed, message: str) -> None:
    parsed.report.status, parsed.report.message = "error", message


def _skip_report(report: FileReport, message: str) -> None:
    report.status, report.message = "duplicate", message


def _skip(parsed: _Parsed, message: str) -> None:
    _skip_report(parsed.report, message)


def _cross_check(con: duckdb.DuckDBPyConnection | None, batch: list[_Parsed]) -> None:
    """Mark duplicates and conflicts against the store (if any) and within the batch."""
    seen_sha: dict[str, str] = {}
    seen_key: dict[str, str] = {}
    for parsed in batch:
        rep = parsed.report
        if rep.status != "ok":
            continue
        earlier = queries.find_by_sha256(con, rep.sha256) if con is not None else None
        if earlier is not None:
            _skip(parsed, f"{rep.file} has the same content as {earlier}, which is already loaded; skipped.")
            continue
        if rep.sha256 in seen_sha:
            _skip(parsed, f"{rep.file} has the same content as {seen_sha[rep.sha256]} in this batch; skipped.")
            continue
        seen_sha[rep.sha256] = rep.file
        what = f"RUL truth for {rep.target}" if rep.role == "truth" else f"dataset {rep.name}"
        if what in seen_key and rep.role in store.IN_SERVICE_ROLES:
            rep.action = "append"
        elif what in seen_key:
            _fail(parsed, f"{rep.file} gives {what} a second time, with content different from {seen_key[what]}.")
            continue
        seen_key[what] = rep.file
        if con is None:
            continue
        if rep.role == "truth":
            if queries.truth_file_sha(con, rep.target or "") is not None:
                _fail(parsed, f"{rep.file} differs from the RUL truth already loaded for {rep.target}; delete "
                              f"{rep.target} first to replace it.")
            continue
        existing = queries.find_dataset(con, rep.name)
        if existing is None:
            continue
        if existing["role"] != rep.role:
            _fail(parsed, f"{rep.file} is meant for a {rep.role} dataset, but {rep.name} is a {existing['role']} "
                          "dataset; choose another dataset name or the matching role.")
        elif rep.role in store.IN_SERVICE_ROLES:
            rep.action = "append"
        else:
            _fail(parsed, f"{rep.file} differs from the {rep.role} dataset {rep.name} already loaded; history "
                          f"datasets are not appended to: delete {rep.name} first to replace it, or load the "
                          "file under another dataset name.")
    _check_truth_counts(con, batch)


def _check_truth_counts(con: duckdb.DuckDBPyConnection | None, batch: list[_Parsed]) -> None:
    tests = {p.report.name: p for p in batch if p.report.status == "ok" and p.report.role == "evaluation"}
    for parsed in batch:
        rep = parsed.report
        if rep.status != "ok":
            continue
        if rep.role == "truth":
            if rep.target in tests:
                engines = tests[rep.target].report.engines
            elif con is not None and (found := queries.find_dataset(con, rep.target)) is not None:
                engines = int(found["engines"])
            else:
                continue
            if engines != rep.rows:
                _fail(parsed, f"{rep.file} has {rep.rows} RUL values but {rep.target} has {engines} engines; "
                              "they must match.")
        elif rep.role == "evaluation" and rep.action == "create" and con is not None:
            pending = queries.pending_truth_count(con, rep.name)
            if pending is not None and pending != rep.engines:
                _fail(parsed, f"{rep.file} has {rep.engines} engines but the RUL file loaded earlier for "
                              f"{rep.name} has {pending} values; they must match.")


def _parse_all(sources: Sequence[Source] | Source, known: dict[str, str], progress: Progress | None,
               share: float, role: str | None = None, dataset: str | None = None) -> list[_Parsed]:
    if isinstance(sources, str | os.PathLike) or (isinstance(sources, tuple) and len(sources) == 2
                                                   and isinstance(sources[1], bytes)):
        sources = [sources]  # type: ignore[list-item]
    limit = max_file_bytes()
    items = list(_items(sources, limit))
    if not items:
        raise UserError("No files were given to load.")
    ctx = _Context(limit=limit, known=known, role=role, dataset=dataset)

    def parse(item: _Item | FileReport) -> list[_Parsed]:
        return [_Parsed(item)] if isinstance(item, FileReport) else _parse_item(item, ctx)

    batch: list[_Parsed] = []
    with ThreadPoolExecutor(max_workers=_PARSE_WORKERS) as pool:
        for n, (item, parsed) in enumerate(zip(items, pool.map(parse, items), strict=True)):
            batch.extend(parsed)
            if progress is not None:
                progress(share * (n + 1) / len(items), f"Read {getattr(item, 'label', None) or item.file}")
    return batch


def _known() -> dict[str, str]:
    if not config.paths().duckdb.exists():
        return {}
    with store.connect(read_only=True) as con:
        return queries.known_sha256(con)


def inspect(sources: Sequence[Source] | Source, role: str | None = None,
            dataset: str | None = None) -> list[FileReport]:
    """Parse and validate sources without writing; one report per file (zip members each get one).

    `role` and `dataset` are as in :func:`load`: each report says the dataset, role and action loading
    would take.
    """
    batch = _parse_all(sources, _known(), None, 1.0, role, dataset.strip() if dataset else None)
    if config.paths().duckdb.exists():
        with store.connect(read_only=True) as con:
            _cross_check(con, batch)
    else:
        _cross_check(None, batch)
    return [p.report for p in batch]


def _truth_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM rul_truth").fetchall()[0][0])


def load(sources: Sequence[Source] | Source, progress: Progress | None = None, role: str | None = None,
         dataset: str | None = None) -> LoadSummary:
    """Validate every source, then write all new content in one transaction.

    Each readings file becomes the dataset its name gives (``train_FD001``) or `dataset` when given, with
    the role its name implies (``train_*`` history, ``test_*`` evaluation, anything else fleet) or `role`
    when given. A file for an existing fleet or evaluation dataset appends to it (identical rows are a
    no-op; a changed value, or a cycle before an engine's last stored one, is refused). Raises
    :class:`UserError` with the first bad file's sentence, leaving the store unchanged. Files whose content
    is already loaded are skipped (status ``duplicate``). Datasets are written before RUL files, so their
    order in `sources` does not matter.
    """
    if role is not None:
        writes.check_role(role)
        if role == "sandbox":
            raise UserError("The sandbox role belongs to the production simulation; choose history, fleet or "
                            "evaluation.")
    if dataset is not None and not dataset.strip():
        raise UserError("The dataset name must not be empty.")
    batch = _parse_all(sources, _known(), progress, 0.6, role, dataset.strip() if dataset else None)
    summary = LoadSummary(files=[p.report for p in batch])
    with store.connect() as con:
        _cross_check(con, batch)
        failed = next((p.report for p in batch if p.report.status == "error"), None)
        if failed is not None:
            raise UserError(failed.message)
        todo = sorted((p for p in batch if p.report.status == "ok"), key=lambda p: p.report.role == "truth")
        before = _truth_rows(con)
        with store.transaction(con):
            for n, parsed in enumerate(todo):
                rep = parsed.report
                if progress is not None:
                    progress(0.6 + 0.4 * n / max(len(todo), 1), f"Storing {rep.file}")
                if parsed.ruls is not None:
                    writes.add_truth_file(con, rep.target or rep.name, rep.source, rep.sha256, parsed.ruls)
                elif queries.find_dataset(con, rep.name) is None:
                    writes.add_dataset(con, rep.name, rep.subset, rep.role, rep.source, parsed.arrays or {},
                                       rep.sha256)
                    summary.datasets_added.append(rep.name)
                    summary.readings_added += rep.rows
                else:
                    merged = writes.merge_readings(con, rep.name, parsed.arrays or {}, rep.source, rep.sha256)
                    summary.appended.append({"file": rep.file, **merged.to_dict()})
                    summary.readings_added += merged.added
            summary.truth_rows_added = _truth_rows(con) - before
    if progress is not None:
        progress(1.0, "Done")
    return summary
