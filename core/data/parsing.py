"""Parse one file's bytes into reading columns or RUL values, naming the exact line of any fault.

NASA's whitespace layout and headered CSV (NASA's column names or the C-MAPSS mnemonics, any order and
case, engine ids as text) go through Arrow's columnar CSV reader; a file it refuses goes through a
line-by-line parser that names the line and the column at fault. Parquet is read with pyarrow. The values are checked by
:func:`core.data.validation.validate_readings` before anything is written.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.data import sensors, validation
from core.data.cmapss import COLUMNS
from core.errors import UserError

RUL_MAX = 100_000
"""Largest plausible true RUL, in cycles."""

TEXT_COLUMNS = [*COLUMNS, "pad_1", "pad_2"]
"""NASA lines end in two spaces, which a single-space delimiter reads as two empty columns."""


def as_text(data: bytes, label: str) -> str:
    if b"\x00" in data[:1_000_000]:
        raise UserError(f"{label} is not a text file: it contains binary data.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{label} is not a text file: byte {err.start + 1} is not valid UTF-8 text.") from err


def _parse_text_fast(data: bytes) -> dict[str, np.ndarray] | None:
    """NASA's layout (single spaces, two trailing) through Arrow's multi-threaded CSV reader.

    Any deviation (other spacing, wrong column count, text, blank lines) returns None so the
    line-by-line parser can name the exact line and problem.
    """
    if data.startswith((b"\n", b"\r")) or b"\n\n" in data or b"\r\n\r\n" in data:
        return None
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=TEXT_COLUMNS),
            parse_options=pa_csv.ParseOptions(delimiter=" "),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(TEXT_COLUMNS, pa.float64())),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows == 0 or any(table.column(i).null_count for i in range(len(COLUMNS))):
        return None
    if any(table.column(pad).null_count != table.num_rows for pad in TEXT_COLUMNS[len(COLUMNS):]):
        return None
    return {name: table.column(i).to_numpy() for i, name in enumerate(COLUMNS)}


def _split_fields(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return [f.strip().strip('"') for f in line.split(delimiter)]


def _parse_rows(
    text: str, label: str, delimiter: str | None, order: list[int], skip_first: bool
) -> tuple[dict[str, np.ndarray], list[int]]:
    """Parse delimited rows line by line; returns columns and each row's line number.

    `order[k]` is the field holding ``COLUMNS[k]``; the engine id (``unit``) stays text, the rest
    must be numbers.
    """
    rows: list[list[float]] = []
    engines: list[str] = []
    numbers: list[int] = []
    width = len(order)
    lines = iter(enumerate(text.splitlines(), 1))
    if skip_first:
        for _, line in lines:
            if line.strip():
                break
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = _split_fields(line, delimiter)
        if len(fields) != width:
            raise UserError(f"{label} line {lineno} has {len(fields)} values but a C-MAPSS reading needs {width} "
                            "(engine, cycle, 3 settings, 21 sensors).")
        engines.append(fields[order[0]])
        try:
            rows.append([float(fields[j]) for j in order[1:]])
        except ValueError:
            for k, j in enumerate(order[1:], 1):
                try:
                    float(fields[j])
                except ValueError:
                    raise UserError(f"{label} line {lineno}: {sensors.display_name(COLUMNS[k])} is '{fields[j]}', "
                                    "which is not a number.") from None
        numbers.append(lineno)
    if not rows:
        raise UserError(f"{label} holds no readings.")
    matrix = np.asarray(rows, dtype=np.float64)
    columns = {name: matrix[:, i] for i, name in enumerate(COLUMNS[1:])}
    return {"engine": np.asarray(engines, dtype=object), **columns}, numbers


def _header(text: str) -> tuple[str | None, list[str]] | None:
    """The delimiter and raw field names if the first non-blank line names any known column, else None."""
    first = next((line for line in text[:100_000].splitlines() if line.strip()), "")
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


def _parse_delimited_fast(data: bytes, delimiter: str | None, fields: list[str],
                          order: list[int]) -> dict[str, np.ndarray] | None:
    """A headered file through Arrow's columnar CSV reader (engine ids as text); None if Arrow refuses it."""
    if delimiter is None:
        return None
    names = [f"c{i}" for i in range(len(fields))]
    types = {name: pa.float64() for name in names}
    types[names[order[0]]] = pa.string()
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(data),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter),
            convert_options=pa_csv.ConvertOptions(column_types=types, strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None
    if table.num_rows == 0 or any(table.column(i).null_count for i in range(len(names))):
        return None
    columns = {name: table.column(order[k]).to_numpy(zero_copy_only=False) for k, name in enumerate(COLUMNS)}
    columns["engine"] = columns.pop("unit").astype(object)
    return columns


def strip_bom(data: bytes) -> bytes:
    """Drop a UTF-8 byte-order mark (Excel's "CSV UTF-8" starts with one)."""
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def parse_readings(data: bytes, label: str) -> dict[str, np.ndarray]:
    """Parse and validate a readings file (NASA text, CSV with a header, or Parquet).

    The result holds float64 arrays for :data:`COLUMNS` (``unit`` numbering the engines 1..n in order of
    first appearance) and ``engine``, each row's engine id as text.
    """
    if data.startswith(b"PAR1"):
        return parse_parquet(data, label)
    data = strip_bom(data)
    text = as_text(data, label)
    if text.isspace():
        raise UserError(f"{label} is empty.")
    header = _header(text)
    if header is not None:
        delimiter, fields = header
        order = _column_order(fields, label)
        fast = _parse_delimited_fast(data, delimiter, fields, order)
        if fast is not None:
            return validation.validate_readings(fast, label, lambda i: f"line {i + 2}")
        arrays, numbers = _parse_rows(text, label, delimiter, order, skip_first=True)
        return validation.validate_readings(arrays, label, lambda i: f"line {numbers[i]}")
    fast = _parse_text_fast(data)
    if fast is not None:
        return validation.validate_readings(fast, label, lambda i: f"line {i + 1}")
    arrays, numbers = _parse_rows(text, label, None, list(range(len(COLUMNS))), skip_first=False)
    return validation.validate_readings(arrays, label, lambda i: f"line {numbers[i]}")


def parse_parquet(data: bytes, label: str) -> dict[str, np.ndarray]:
    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as err:
        raise UserError(f"{label} is not a readable Parquet file: {err}.") from err
    order = _column_order(list(table.column_names), label)
    columns = {name: table.column(order[k]).to_numpy(zero_copy_only=False) for k, name in enumerate(COLUMNS)}
    columns["engine"] = columns.pop("unit")
    return validation.validate_readings(columns, label)


def parse_rul(data: bytes, label: str) -> list[int]:
    """One positive whole number of cycles per non-blank line."""
    text = as_text(data, label)
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
