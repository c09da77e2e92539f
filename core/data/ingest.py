"""Read, validate and load C-MAPSS files into the fleet store (shared by the CLI and the Data page).

Accepted sources: paths to NASA's whitespace ``.txt`` files (optionally ``.gz``), NASA's zip
(an outer zip wrapping ``CMAPSSData.zip``), folders, CSV or Parquet files with the 26
:data:`core.data.cmapss.COLUMNS` and a header, or ``(filename, bytes)`` pairs from an upload.
``RUL_FD00x`` files hold one positive whole number per line and fill ``rul_truth`` of
``test_FD00x`` whichever is loaded first. Dataset names (given, or taken from the file name) and engine ids
follow the rule for names of :mod:`core.data.names` (normalised; control and format characters refused).

Work goes in three steps and nothing is written until the last: (1) zips and gzip files are unpacked,
streaming, into a temporary folder within the limits of :mod:`core.data.archives` (file size, everything
unpacked, zip entries, nesting depth), and each file's sha256 is taken; (2) new content is parsed by the
columnar readers of :mod:`core.data.parsing` and validated (see
:func:`core.data.validation.validate_readings` for the checks and bounds); (3) :func:`load` writes in one
transaction. Content already loaded (same sha256 of the uncompressed bytes), or given twice in one load,
is reported as ``duplicate`` and never parsed. With `root`, paths must lie inside that folder
(:mod:`core.data.import_root`); `cancelled` is asked between files and chunks and stops the work with
nothing written.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from core import config
from core.data import import_root, names, queries, store, writes
from core.data.archives import CHUNK, Blob, Cancelled, Leaf, Limits, Unpacker, megabytes, wanted_file
from core.data.cmapss import parse_file_name
from core.data.parsing import parse_readings, parse_rul, strip_bom
from core.errors import UserError

Source = str | os.PathLike | tuple[str, bytes]
Progress = Callable[[float, str], None]

_PARSE_WORKERS = 2
"""Files parsed at once: sha256 and Arrow's CSV reader release the GIL, so reading overlaps; progress is
still reported from the calling thread only."""


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
    leaf: Leaf | None = None


@dataclass
class _Context:
    role: str | None = None
    dataset: str | None = None
    root: Path | None = None
    stop_at_first_error: bool = False


# ----------------------------------------------------------------------------- sources


def _path_leaves(path: Path, root: Path | None) -> list[Leaf]:
    """A path as files to read (a folder's wanted files, sorted); UserError if it cannot be read."""
    if root is not None:
        path = import_root.inside(path, root)
    if not path.exists():
        raise UserError(f"{path} does not exist.")
    if path.is_dir():
        chosen = [p for p in sorted(path.iterdir()) if wanted_file(p.name)]
        if root is not None:
            chosen = [import_root.folder_entry(p, root) for p in chosen]
        chosen = [p for p in chosen if p.is_file()]
        if not chosen:
            raise UserError(f"The folder {path} holds no C-MAPSS, CSV, Parquet or zip files.")
        return [leaf for p in chosen for leaf in _path_leaves(p, root)]
    if not path.is_file():
        raise UserError(f"{path} is not a regular file.")
    return [Leaf(label=str(path), filename=path.name, source=str(path.resolve()), blob=Blob(path=path))]


def _sources(sources: Iterable[Source], root: Path | None) -> Iterator[Leaf | FileReport]:
    """Expand sources into files to read; a source that cannot be opened yields an error report."""
    for src in sources:
        if isinstance(src, tuple):
            filename, data = src
            yield Leaf(label=filename, filename=filename, source=f"upload:{filename}", blob=Blob(data=data))
            continue
        try:
            yield from _path_leaves(Path(src), root)
        except UserError as err:
            shown = str(src)
            yield _error_report(shown, Path(shown).name, shown, str(err))


def _error_report(label: str, filename: str, source: str, message: str) -> FileReport:
    fn = parse_file_name(filename)
    return FileReport(file=label, name=fn.name, subset=fn.subset, role=fn.role, source=source,
                      status="error", message=message, target=fn.target)


def _report(leaf: Leaf, ctx: _Context) -> FileReport:
    """What `leaf` would load as; an error report when the dataset name its file name gives is refused."""
    fn = parse_file_name(names.fold(leaf.filename))
    report = FileReport(file=leaf.label, name=fn.name, subset=fn.subset, role=fn.role, source=leaf.source,
                        target=fn.target)
    if fn.role != "truth":
        report.role = ctx.role or fn.role
        report.name = ctx.dataset or fn.name
        phrase = None if ctx.dataset else names.refusal(fn.name, names.DATASET)
        if phrase is not None:
            report.status = "error"
            report.message = (f"{names.escape(leaf.label)}: {phrase}, taken from the file name; give the dataset "
                              "another name or rename the file.")
    return report


# ----------------------------------------------------------------------------- unpacking and hashing


def _sha256(blob: Blob, unpacker: Unpacker) -> str:
    if blob.data is not None:
        return hashlib.sha256(blob.data).hexdigest()
    digest = hashlib.sha256()
    with blob.open() as handle:
        while chunk := handle.read(CHUNK):
            unpacker.check_cancelled()
            digest.update(chunk)
    return digest.hexdigest()


def _unpack(source: Leaf, unpacker: Unpacker, ctx: _Context, known: dict[str, str],
            seen: dict[str, str]) -> list[_Parsed]:
    """Step 1 for one source: its files within the limits, hashed; duplicates and empty files reported."""
    limit = unpacker.limits.file_bytes
    try:
        size = source.blob.size()
        if size > limit:
            raise UserError(f"{source.label} is {megabytes(size)}, larger than the {megabytes(limit)} limit for "
                            "one file (set PM_MAX_FILE_MB to raise it).")
        leaves = unpacker.expand(source.label, source.filename, source.source, source.blob)
    except Cancelled:
        raise
    except UserError as err:
        return [_Parsed(_error_report(source.label, source.filename, source.source, str(err)))]
    except OSError as err:
        return [_Parsed(_error_report(source.label, source.filename, source.source,
                                      f"{source.label} could not be read: {err.strerror or err}."))]
    batch = []
    for leaf in leaves:
        report = _report(leaf, ctx)
        parsed = _Parsed(report, leaf=leaf)
        batch.append(parsed)
        if report.status == "error":
            continue
        head = leaf.blob.head(65_536)
        if not strip_bom(head).strip() and leaf.blob.size() <= len(head):
            report.status, report.message = "error", f"{leaf.label} is empty."
            continue
        report.sha256 = _sha256(leaf.blob, unpacker)
        if report.sha256 in known:
            _skip_report(report, f"{leaf.label} has the same content as {known[report.sha256]}, which is "
                                 "already loaded; skipped.")
        elif report.sha256 in seen:
            _skip_report(report, f"{leaf.label} has the same content as {seen[report.sha256]} in this batch; "
                                 "skipped.")
        else:
            seen[report.sha256] = leaf.label
    return batch


def _parse_leaf(parsed: _Parsed, unpacker: Unpacker) -> None:
    """Step 2 for one new file: parse and validate it; a problem becomes its report's sentence."""
    report, leaf = parsed.report, parsed.leaf
    if report.status != "ok" or leaf is None:
        return
    unpacker.check_cancelled()
    try:
        if report.role == "truth":
            parsed.ruls = parse_rul(leaf.blob, leaf.label)
            report.rows = report.engines = len(parsed.ruls)
        else:
            parsed.arrays = parse_readings(leaf.blob, leaf.label)
            report.rows = len(parsed.arrays["unit"])
            report.engines = int(np.unique(parsed.arrays["unit"]).size)
    except Cancelled:
        raise
    except UserError as err:
        report.status, report.message = "error", str(err)
    parsed.leaf = None


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
            elif (con is not None and rep.target is not None
                  and (found := queries.find_dataset(con, rep.target)) is not None):
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


def _parse_all(sources: Sequence[Source] | Source, progress: Progress | None, share: float, ctx: _Context,
               cancelled: Callable[[], bool] | None) -> list[_Parsed]:
    """Steps 1 and 2 for every source: unpack and hash all of them, then parse the new files."""
    if isinstance(sources, str | os.PathLike) or (isinstance(sources, tuple) and len(sources) == 2
                                                   and isinstance(sources[1], bytes)):
        sources = [sources]
    limits = Limits.from_env()
    known = _known()
    seen: dict[str, str] = {}
    batch: list[_Parsed] = []
    with tempfile.TemporaryDirectory(prefix="pm-ingest-") as spool:
        unpacker = Unpacker(Path(spool), limits, cancelled)
        for source in _sources(sources, ctx.root):
            unpacker.check_cancelled()
            batch.extend([_Parsed(source)] if isinstance(source, FileReport)
                         else _unpack(source, unpacker, ctx, known, seen))
            if ctx.stop_at_first_error and any(p.report.status == "error" for p in batch):
                return batch
        if not batch:
            raise UserError("No files were given to load.")
        with ThreadPoolExecutor(max_workers=_PARSE_WORKERS) as pool:
            for n, _ in enumerate(pool.map(lambda parsed: _parse_leaf(parsed, unpacker), batch)):
                if progress is not None:
                    progress(share * (n + 1) / len(batch), f"Read {batch[n].report.file}")
    return batch


def _dataset_name(dataset: str | None) -> str | None:
    """The dataset name given for a load, normalised by the rule for names (UserError when refused)."""
    return None if dataset is None else names.normalise(dataset, names.DATASET)


def _known() -> dict[str, str]:
    if not config.paths().duckdb.exists():
        return {}
    with store.connect(read_only=True) as con:
        return queries.known_sha256(con)


def inspect(sources: Sequence[Source] | Source, role: str | None = None, dataset: str | None = None,
            root: Path | None = None, cancelled: Callable[[], bool] | None = None) -> list[FileReport]:
    """Parse and validate sources without writing; one report per file (zip members each get one).

    `role` and `dataset` are as in :func:`load`: each report says the dataset, role and action loading
    would take. With `root`, paths outside that folder are refused; `cancelled` stops the work (raising
    :class:`core.data.archives.Cancelled`).
    """
    ctx = _Context(role=role, dataset=_dataset_name(dataset), root=root)
    batch = _parse_all(sources, None, 1.0, ctx, cancelled)
    if config.paths().duckdb.exists():
        with store.connect(read_only=True) as con:
            _cross_check(con, batch)
    else:
        _cross_check(None, batch)
    return [p.report for p in batch]


def _truth_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM rul_truth").fetchall()[0][0])


def load(sources: Sequence[Source] | Source, progress: Progress | None = None, role: str | None = None,
         dataset: str | None = None, root: Path | None = None,
         cancelled: Callable[[], bool] | None = None) -> LoadSummary:
    """Validate every source, then write all new content in one transaction.

    Each readings file becomes the dataset its name gives (``train_FD001``) or `dataset` when given, with
    the role its name implies (``train_*`` history, ``test_*`` evaluation, anything else fleet) or `role`
    when given. A file for an existing fleet or evaluation dataset appends to it (identical rows are a
    no-op; a changed value, or a cycle before an engine's last stored one, is refused). Raises
    :class:`UserError` with the first bad file's sentence, leaving the store unchanged. Files whose content
    is already loaded are skipped (status ``duplicate``). Datasets are written before RUL files, so their
    order in `sources` does not matter. With `root`, paths outside that folder are refused; `cancelled` is
    asked until the write begins and stops the load with nothing written.
    """
    if role is not None:
        writes.check_role(role)
        if role == "sandbox":
            raise UserError("The sandbox role belongs to the production simulation; choose history, fleet or "
                            "evaluation.")
    ctx = _Context(role=role, dataset=_dataset_name(dataset), root=root, stop_at_first_error=True)
    batch = _parse_all(sources, progress, 0.6, ctx, cancelled)
    failed = next((p.report for p in batch if p.report.status == "error"), None)
    if failed is not None:
        raise UserError(failed.message)
    summary = LoadSummary(files=[p.report for p in batch])
    if cancelled is not None and cancelled():
        raise Cancelled("The load was stopped because the page that started it was closed; nothing was written.")
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
