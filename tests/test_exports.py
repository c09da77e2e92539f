"""CSV exports cannot carry a live spreadsheet formula: text cells starting with = + - @ tab, CR or NUL get a
leading single quote (OWASP's CSV-injection advice); numbers, flags and dates are written as they are."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from core.data import exports


@pytest.mark.parametrize("cell", ["=1+2", '=HYPERLINK("http://x","click")', "+SUM(A1)", "-2+3", "@SUM(A1)",
                                  "\t=1", "\r=1", "\0=1"])
def test_formula_prefixes_get_a_leading_quote(cell: str) -> None:
    out = exports.neutralise_formulas(pd.DataFrame({"engine": [cell]}))
    assert out["engine"].tolist() == ["'" + cell]
    back = pd.read_csv(io.BytesIO(exports.csv_bytes(pd.DataFrame({"engine": [cell]}))), dtype=str,
                       keep_default_na=False)
    assert back["engine"].tolist() == ["'" + cell]


def test_other_cells_and_typed_columns_are_unchanged() -> None:
    frame = pd.DataFrame({
        "engine": ["ESN-7001", "a=b", "", None, "'=already"],
        "rul": [-3.5, 0.0, 12.0, -1.0, 5.0],
        "cycle": [-1, 2, 3, 4, 5],
        "ood": [True, False, True, False, True],
        "at": pd.to_datetime(["2026-12-04"] * 5),
        "mixed": [-2, "-2", 3.5, "x", "=x"],
    })
    out = exports.neutralise_formulas(frame)
    assert out["engine"].tolist()[:3] == ["ESN-7001", "a=b", ""] and out["engine"].isna().tolist()[3]
    assert out["engine"].iloc[4] == "'=already"
    for column in ("rul", "cycle", "ood", "at"):
        pd.testing.assert_series_equal(out[column], frame[column])
    assert out["mixed"].tolist() == [-2, "'-2", 3.5, "x", "'=x"], "numbers stay numbers, text is neutralised"
    text = exports.csv_bytes(frame).decode()
    assert text.splitlines()[1].startswith("ESN-7001,-3.5,-1,True,2026-12-04")
