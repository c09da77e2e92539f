"""Parse one file's bytes into reading columns or RUL values, naming the exact line of any fault.

NASA's whitespace layout goes through Arrow's multi-threaded CSV reader; a file it cannot read, or one
with a header (CSV with NASA's column names), goes through a line-by-line parser that names the line and
the column at fault. Parquet is read with pyarrow. The values are checked by
:func:`core.data.validation.validate_readings` before anything is written.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from core.data import validation
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
    """Parse delimited rows line by line; returns columns and each row's line number."""
    rows: list[list[float]] = []
    numbers: list[int] = []
    width = len(COLUMNS)
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
                            "(unit, cycle, 3 settings, 21 sensors).")
        try:
            rows.append([float(fields[j]) for j in order])
        except ValueError:
            for j in order:
                try:
                    float(fields[j])
                except ValueError:
                    raise UserError(f"{label} line {lineno}: {COLUMNS[order.index(j)]} is '{fields[j]}', "
                                    "which is not a number.") from None
        numbers.append(lineno)
    if not rows:
        raise UserError(f"{label} holds no readings.")
    matrix = np.asarray(rows, dtype=np.float64)
    return {name: matrix[:, i] for i, name in enumerate(COLUMNS)}, numbers


def _header(text: str) -> tuple[str | None, list[str]] | None:
    """The delimiter and field names if the first non-blank line names any of the columns, else None."""
    first = next((line for line in text[:100_000].splitlines() if line.strip()), "")
    delimiter = next((d for d in (",", ";", "\t") if d in first), None)
    fields = [f.lower() for f in _split_fields(first, delimiter)]
    return (delimiter, fields) if any(f in COLUMNS for f in fields) else None


def _column_order(fields: list[str], label: str) -> list[int]:
    missing = [c for c in COLUMNS if c not in fields]
    extra = [f for f in fields if f not in COLUMNS]
    if missing or extra or len(fields) != len(COLUMNS):
        if missing:
            problem = f"lacks {', '.join(missing)}"
        elif extra:
            problem = f"has the unexpected column(s) {', '.join(extra)}"
        else:
            problem = "repeats a column"
        raise UserError(f"{label} has a header that {problem}; it must name exactly the 26 columns "
                        "unit, cycle, setting_1..3 and sensor_1..21.")
    return [fields.index(c) for c in COLUMNS]


def parse_readings(data: bytes, label: str) -> dict[str, np.ndarray]:
    """Parse and validate a readings file (NASA text, CSV with header, or Parquet)."""
    if data.startswith(b"PAR1"):
        return parse_parquet(data, label)
    text = as_text(data, label)
    if text.isspace():
        raise UserError(f"{label} is empty.")
    header = _header(text)
    if header is not None:
        delimiter, fields = header
        arrays, numbers = _parse_rows(text, label, delimiter, _column_order(fields, label), skip_first=True)
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
    names = [n.lower() for n in table.column_names]
    _column_order(names, label)
    columns = {name: table.column(names.index(name)).to_numpy(zero_copy_only=False) for name in COLUMNS}
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
