"""Tables the product hands out as files (CSV downloads), safe to open in a spreadsheet.

Every export goes through :func:`csv_bytes`. A text cell that starts with a character a spreadsheet reads as
the start of a formula (:data:`FORMULA_PREFIXES`: ``=``, ``+``, ``-``, ``@``, tab, carriage return, NUL) is
written with a leading single quote, as OWASP's CSV-injection advice and ASVS 1.2.10 say: an engine id
``=HYPERLINK("…")`` appended through the API opens as the text ``'=HYPERLINK("…")``, not as a live link.
Numeric, boolean and date columns are written as they are (a negative number is a number, not a formula).
Lines end in CRLF as RFC 4180 has them, so a cell holding a quote, a comma or a line break of either kind is
quoted (with LF endings a lone CR would be left bare and split the row in a reader).
"""

from __future__ import annotations

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\0")
"""First characters that make a spreadsheet treat a cell as a formula (or hide what follows)."""


def _literal(value: object) -> object:
    """`value` with a leading single quote when it is text starting with a formula prefix; otherwise unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells cannot be read as formulas (see the module doc); numeric, boolean and
    date columns are untouched."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_datetime64_any_dtype(values)):
            out[column] = values.map(_literal)
    return out


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """`frame` as UTF-8 CSV (RFC 4180 line ends) without its index, formula prefixes neutralised
    (:func:`neutralise_formulas`)."""
    return neutralise_formulas(frame).to_csv(index=False, lineterminator="\r\n").encode()
