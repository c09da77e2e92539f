"""Parse one readings file (from disk or bytes) into columns, or RUL values, naming the exact line of any fault.

Every readings file goes through a columnar reader: NASA's whitespace layout and headered CSV (NASA's
column names or the C-MAPSS mnemonics, any order and case, engine ids as text) through Arrow's CSV
reader, Parquet through pyarrow. Text whose spacing is not NASA's exact layout (tabs, runs of spaces) is
collapsed to single spaces on the way into Arrow, a chunk at a time. Only when Arrow refuses a file is it
read again line by line, and only to name the line and the column at fault (nothing is kept). Engine ids
are read dictionary-encoded, so a file of millions of rows holds one string per engine. The values are
checked by :func:`core.data.validation.validate_readings` before anything is written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.config import env_number
from core.data import names, sensors, validation
from core.data.archives import CHUNK, Blob
from core.data.cmapss import COLUMNS
from core.errors import UserError

RUL_MAX = 100_000
"""Largest plausible true RUL, in cycles."""
RUL_FILE_MAX_BYTES = 16 * 2**20
"""A RUL file holds one number per engine; anything larger is not one."""
DEFAULT_MAX_PARQUET_ROWS = 5_000_000
"""Rows one Parquet file may hold (``PM_MAX_ROWS``): Parquet compresses, so its size on disk does not bound
what it unpacks to."""
HEAD_BYTES = 1_000_000
"""Bytes sniffed for a header, binary content and Parquet's magic number."""
BOM = b"\xef\xbb\xbf"

Content = bytes | Path | Blob
_ENGINE_TYPE = pa.dictionary(pa.int32(), pa.string())
_SPACE_RUN = re.compile(rb"[ \t\f\v\r]+")
_LINE_EDGE_SPACE = re.compile(rb"(?m)^ | $")


def _blob(content: Content) -> Blob:
    if isinstance(content, Blob):
        return content
    if isinstance(content, bytes):
        return Blob(data=content)
    return Blob(path=Path(content))


def _arrow_input(blob: Blob) -> str | pa.BufferReader:
    return str(blob.path) if blob.path is not None else pa.BufferReader(blob.data or b"")


def max_parquet_rows() -> int:
    """Rows one Parquet file may hold (``PM_MAX_ROWS``, default :data:`DEFAULT_MAX_PARQUET_ROWS`)."""
    return int(env_number("PM_MAX_ROWS", DEFAULT_MAX_PARQUET_ROWS, 0, whole=True,
                          meaning="the rows one Parquet file may hold"))


def strip_bom(data: bytes) -> bytes:
    """Drop a UTF-8 byte-order mark (Excel's "CSV UTF-8" starts with one)."""
    return data[3:] if data.startswith(BOM) else data


def as_text(data: bytes, label: str) -> str:
    if b"\x00" in data[:HEAD_BYTES]:
        raise UserError(f"{label} is not a text file: it contains binary data.")
    try:
        return strip_bom(data).decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{label} is not a text file: byte {err.start + 1} is not valid UTF-8 text.") from err


class _CollapsedSpaces(io.RawIOBase):
    """A whitespace-separated text stream with each run of spaces or tabs as one space and none at line ends."""

    def __init__(self, handle: BinaryIO) -> None:
        super().__init__()
        self._handle = handle
        self._rest = b""
        self._out = memoryview(b"")
        self._first = True

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while not self._out:
            chunk = self._handle.read(CHUNK)
            if self._first:
                chunk, self._first = strip_bom(chunk), False
            if not chunk and not self._rest:
                return False
            data = self._rest + chunk
            cut = data.rfind(b"\n") + 1 if chunk else len(data)
            if cut == 0:
                self._rest = data
                continue
            data, self._rest = data[:cut], data[cut:]
            self._out = memoryview(_LINE_EDGE_SPACE.sub(b"", _SPACE_RUN.sub(b" ", data)))
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._fill():
            return 0
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def _read_table(source: object, names: list[str], skip_rows: int, delimiter: str,
                engine: str) -> pa.Table | None:
    """Arrow's CSV reader with every column a float64 but `engine` (dictionary-encoded text); None if refused."""
    types = {name: pa.float64() for name in names}
    types[engine] = _ENGINE_TYPE
    try:
        return pa_csv.read_csv(
            source,
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=skip_rows),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None


def _read_whitespace(blob: Blob, names: list[str], engine: str, skip_rows: int) -> pa.Table | None:
    """NASA's exact layout (single spaces, two trailing) read directly; any other spacing read collapsed."""
    if not skip_rows:
        pads = ["pad_1", "pad_2"]
        table = _read_table(_arrow_input(blob), [*names, *pads], 0, " ", engine)
        if table is not None and all(table.column(p).null_count == table.num_rows for p in pads):
            return table.select(names)
    with blob.open() as handle:
        return _read_table(io.BufferedReader(_CollapsedSpaces(handle), CHUNK), names, skip_rows, " ", engine)


def _to_arrays(columns: list[pa.ChunkedArray]) -> dict[str, np.ndarray]:
    """NumPy columns named by :data:`COLUMNS` from Arrow columns in that order, freeing each Arrow column as it goes.

    The engine column (first) becomes text ids; a dictionary-encoded one maps each row to its engine's one string.
    """
    arrays: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        column = columns.pop(0)
        if pa.types.is_dictionary(column.type):
            unified = column.unify_dictionaries()
            ids = (unified.chunk(0).dictionary if unified.num_chunks else pa.array([], pa.string()))
            codes = np.concatenate([np.asarray(c.indices) for c in unified.chunks] or [np.zeros(0, np.int32)])
            arrays["engine"] = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)[codes]
        elif name == "unit":
            arrays["engine"] = column.to_numpy()
        else:
            arrays[name] = column.to_numpy()
        del column
    return arrays


def _line_namer(blob: Blob, skip_first: bool) -> Callable[[int], str]:
    """``where(i)``: the line of data row ``i`` (rows skip blank lines and, with `skip_first`, the header)."""
    cache: dict[int, int] = {}

    def where(row: int) -> str:
        if row not in cache:
            cache[row] = _line_of_row(blob, row, skip_first)
        return f"line {cache[row]}"

    return where


def _line_of_row(blob: Blob, row: int, skip_first: bool) -> int:
    seen = -1 if skip_first else 0
    with blob.open() as handle:
        for lineno, raw in enumerate(handle, 1):
            if not raw.strip() or (lineno == 1 and not strip_bom(raw).strip()):
                continue
            if seen == row:
                return lineno
            seen += 1
    return row + 1


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [f.strip().strip('"') for f in line.split(delimiter)]


def _explain(blob: Blob, label: str, delimiter: str | None, order: list[int], skip_first: bool) -> UserError:
    """The sentence naming the first bad line of a file the columnar reader refused (read a line at a time)."""
    width = len(order)
    header_pending = skip_first
    offset = 0
    with blob.open() as handle:
        for lineno, raw in enumerate(handle, 1):
            raw = strip_bom(raw) if lineno == 1 else raw
            if b"\x00" in raw:
                return UserError(f"{label} is not a text file: it contains binary data.")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return UserError(f"{label} is not a text file: byte {offset + err.start + 1} is not valid UTF-8 text.")
            offset += len(raw)
            if not line.strip():
                continue
            if header_pending:
                header_pending = False
                continue
            fields = _split_fields(line, delimiter)
            if len(fields) != width:
                return UserError(f"{label} line {lineno} has {len(fields)} values but a C-MAPSS reading needs "
                                 f"{width} (engine, cycle, 3 settings, 21 sensors).")
            refused = names.refusal(fields[order[0]], names.ENGINE)
            if refused is not None:
                return UserError(f"{label} line {lineno}: {refused}.")
            for k, j in enumerate(order[1:], 1):
                try:
                    float(fields[j])
                except ValueError:
                    return UserError(f"{label} line {lineno}: {sensors.display_name(COLUMNS[k])} is '{fields[j]}', "
                                     "which is not a number.")
    return UserError(f"{label} could not be read as a table of C-MAPSS readings; check its delimiter and quoting.")


def _header(text: str) -> tuple[str | None, list[str]] | None:
    """The delimiter and raw field names if the first non-blank line names any known column, else None."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)
    fields = _split_fields(first, delimiter)
    return (delimiter, fields) if any(sensors.canonical_column(f) for f in fields) else None


def _column_order(fields: list[str], label: str) -> list[int]:
    """Position of each of :data:`COLUMNS` among header `fields` (storage names or mnemonics, any case)."""
    canonical = [sensors.canonical_column(f) for f in fields]
    extra = [f for f, c in zip(fields, canonical, strict=True) if c is None]
    repeated = sorted({c for c in canonical if c is not None and canonical.count(c) > 1})
    missing = [c for c in COLUMNS if c not in canonical]
    if extra or repeated or missing:
        if missing:
            names = [f"{sensors.mnemonic(c)} ({c})" if sensors.mnemonic(c) != c else c for c in missing]
            problem = f"lacks {', '.join(names)}"
        elif extra:
            problem = f"has the unexpected column(s) {', '.join(extra)}"
        else:
            problem = f"names {', '.join(repeated)} twice"
        raise UserError(f"{label} has a header that {problem}; it must name the 26 columns engine (or unit), "
                        "cycle, the 3 settings and the 21 sensors, by NASA's names or the C-MAPSS mnemonics.")
    return [canonical.index(c) for c in COLUMNS]


def parse_readings(content: Content, label: str) -> dict[str, np.ndarray]:
    """Parse and validate a readings file (NASA text, CSV with a header, or Parquet) from bytes, a path or a Blob.

    The result holds float64 arrays for :data:`COLUMNS` (``unit`` numbering the engines 1..n in order of
    first appearance) and ``engine``, each row's engine id as text.
    """
    blob = _blob(content)
    head = blob.head(HEAD_BYTES)
    if head.startswith(b"PAR1"):
        return parse_parquet(blob, label)
    head = strip_bom(head)
    if b"\x00" in head:
        raise UserError(f"{label} is not a text file: it contains binary data.")
    if head.isspace() or not head:
        raise UserError(f"{label} is empty.")
    header = _header(head[:100_000].decode("utf-8", errors="replace"))
    if header is None:
        delimiter, order, skip = None, list(range(len(COLUMNS))), False
    else:
        delimiter, fields = header
        order, skip = _column_order(fields, label), True
    names = [f"c{i}" for i in range(len(order))]
    if delimiter is None:
        table = _read_whitespace(blob, names, names[order[0]], int(skip))
    else:
        table = _read_table(_arrow_input(blob), names, 1, delimiter, names[order[0]])
    if table is None:
        raise _explain(blob, label, delimiter, order, skip)
    columns = [table.column(j) for j in order]
    del table
    return validation.validate_readings(_to_arrays(columns), label, _line_namer(blob, skip))


_TEMPORAL = (pa.types.is_temporal, pa.types.is_interval)


def _check_parquet_types(schema: pa.Schema, order: list[int], label: str) -> None:
    """Refuse true/false and date/time columns rather than coercing them to numbers."""
    for name, j in zip(COLUMNS, order, strict=True):
        kind = schema.field(j).type
        what = sensors.display_name(name) if name != "unit" else "engine"
        if pa.types.is_boolean(kind):
            raise UserError(f"{label}: {what} holds true/false values, but it must hold "
                            "numbers; nothing was loaded.")
        if any(test(kind) for test in _TEMPORAL):
            need = "whole numbers of cycles" if name == "cycle" else "numbers"
            raise UserError(f"{label}: {what} holds dates or times, but it must hold "
                            f"{need}; nothing was loaded.")


def parse_parquet(content: Content, label: str) -> dict[str, np.ndarray]:
    """A Parquet readings file: its schema and row count are checked before any column is read."""
    blob = _blob(content)
    try:
        schema = pq.ParquetFile(_arrow_input(blob)).schema_arrow
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{label} is not a readable Parquet file: {err}.") from err
    order = _column_order(list(schema.names), label)
    engine = schema.names[order[0]]
    text_ids = pa.types.is_string(schema.field(engine).type) or pa.types.is_large_string(schema.field(engine).type)
    parquet = pq.ParquetFile(_arrow_input(blob), read_dictionary=[engine] if text_ids else None)
    _check_parquet_types(schema, order, label)
    limit = max_parquet_rows()
    if parquet.metadata.num_rows > limit:
        raise UserError(f"{label} holds {parquet.metadata.num_rows:,} rows, more than the {limit:,} allowed in one "
                        "Parquet file (set PM_MAX_ROWS to raise it).")
    try:
        table = parquet.read(columns=[schema.names[j] for j in order])
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{label} is not a readable Parquet file: {err}.") from err
    columns = [table.column(k) for k in range(len(COLUMNS))]
    del table
    return validation.validate_readings(_to_arrays(columns), label)


def parse_rul(content: Content, label: str) -> list[int]:
    """One positive whole number of cycles per non-blank line."""
    blob = _blob(content)
    if blob.size() > RUL_FILE_MAX_BYTES:
        raise UserError(f"{label} is larger than {RUL_FILE_MAX_BYTES // 2**20} MB, too large for a RUL file "
                        "(one number per engine).")
    with blob.open() as handle:
        text = as_text(handle.read(), label)
    values: list[int] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 1:
            raise UserError(f"{label} line {lineno} has {len(fields)} values but a RUL file needs one whole "
                            "number per line.")
        token = fields[0]
        if not token.lstrip("+-").isdigit():
            raise UserError(f"{label} line {lineno}: '{token}' is not a whole number of cycles.")
        value = int(token)
        if value < 1 or value > RUL_MAX:
            raise UserError(f"{label} line {lineno}: RUL is {value}, but it must be a positive whole number of "
                            f"cycles no larger than {RUL_MAX:,}.")
        values.append(value)
    if not values:
        raise UserError(f"{label} is empty.")
    return values
