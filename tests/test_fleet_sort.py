"""The fleet table is sorted over every filtered engine in SQL, then paged; and its CSV download cannot carry a
live spreadsheet formula in an engine id. Stored scores are written directly (no model): what is tested is the
order and the export, not the scores."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from core.data import fleet_ops, ingest, queries, score_queries, store
from core.errors import UserError
from core.serving import fleet

ALL_RISKS = ("HIGH", "MEDIUM", "LOW")
EVERYTHING = score_queries.FleetFilter(("test_FD001", "line-a"), ALL_RISKS, (-10.0, 125.0))
HOSTILE = ["=1+2", '=HYPERLINK("http://x")', "-5", "@SUM(A1)", "+7", "ESN-7"]


def _risk(p_fail: float) -> str:
    return "HIGH" if p_fail >= 0.6 else "MEDIUM" if p_fail >= 0.3 else "LOW"


def _store_scores(scores: dict[tuple[str, str], tuple[float, float]]) -> None:
    """Store one prediction of model version 1 per engine ((dataset, engine id) -> (rul, p_fail_30)) at its last
    cycle; the interval is rul ± 5."""
    def write(con) -> None:
        for (dataset, engine), (rul, p_fail) in scores.items():
            con.execute(
                "INSERT INTO predictions SELECT now(), e.dataset_id, e.unit, max(r.cycle), '1', ?, ?, ?, ?, ?, false, "
                "NULL FROM engines e JOIN datasets d ON d.id = e.dataset_id JOIN readings r ON r.dataset_id = "
                "e.dataset_id AND r.unit = e.unit WHERE d.name = ? AND e.engine = ? GROUP BY e.dataset_id, e.unit",
                [rul, rul - 5.0, rul + 5.0, p_fail, _risk(p_fail), dataset, engine])

    store.write(write)


@pytest.fixture
def cmapss_file_path(cmapss_dir: Path) -> Callable[[str], Path]:
    def path(name: str) -> Path:
        packed = cmapss_dir / f"{name}.txt.gz"
        return packed if packed.is_file() else cmapss_dir / f"{name}.txt"

    return path


@pytest.fixture
def scored(pm_home: Path, cmapss_file_path: Callable[[str], Path]) -> dict[str, float]:
    """test_FD001 (engines "1".."100", true RUL known) and a fleet dataset "line-a" of hostile ids (no truth),
    each with a stored score. Predicted RUL and P(fail) are unrelated permutations, so the riskiest engines are
    not the ones with the lowest RUL. Returns the predicted RUL by engine id."""
    ingest.load([cmapss_file_path("test_FD001"), cmapss_file_path("RUL_FD001")])
    with store.connect(read_only=True) as con:
        history = queries.engine_readings(con, "test_FD001", 3)
    fleet_ops.append_readings("line-a", pd.concat([history.assign(engine=e) for e in HOSTILE], ignore_index=True)
                              .drop(columns="unit"))
    scores = {("test_FD001", str(u)): (float((u * 37) % 100) + 0.5, ((u * 53) % 100) / 100) for u in range(1, 101)}
    scores.update({("line-a", e): (-3.5 if e == "-5" else 60.0 + i, 0.1) for i, e in enumerate(HOSTILE)})
    _store_scores(scores)
    return {engine: rul for (_, engine), (rul, _) in scores.items()}


def _page(order: score_queries.FleetSort, page: int, size: int = 50,
          chosen: score_queries.FleetFilter = EVERYTHING) -> pd.DataFrame:
    with store.connect(read_only=True) as con:
        return score_queries.fleet_page(con, 1, chosen, (page - 1) * size, size, order)


def test_a_chosen_sort_orders_every_filtered_engine_before_paging(scored: dict[str, float]) -> None:
    triage = pd.concat([_page(score_queries.TRIAGE, 1), _page(score_queries.TRIAGE, 2), _page(score_queries.TRIAGE, 3)],
                       ignore_index=True)
    assert len(triage) == 106 and triage["risk"].map({"HIGH": 0, "MEDIUM": 1, "LOW": 2}).is_monotonic_increasing
    longest = max(scored, key=scored.get)
    assert longest in set(_page(score_queries.TRIAGE, 2)["engine"]), "under triage it sits on page 2"

    by_rul = _page(score_queries.FleetSort("rul", descending=True), 1)
    assert by_rul.iloc[0]["engine"] == longest, "sorted by predicted RUL, highest first, it opens page 1"
    assert by_rul["rul"].tolist() == sorted(scored.values(), reverse=True)[:50]
    lowest = _page(score_queries.FleetSort("rul", descending=False), 1)
    assert lowest["rul"].tolist() == sorted(scored.values())[:50]
    assert lowest.iloc[0]["engine"] == "-5" and lowest.iloc[0]["rul"] == -3.5
    whole = pd.concat([_page(score_queries.FleetSort("rul", False), n) for n in (1, 2, 3)], ignore_index=True)
    assert whole["rul"].is_monotonic_increasing and len(whole) == 106

    least_risky = _page(score_queries.FleetSort("risk", descending=False), 1)
    assert least_risky.iloc[0]["engine"] == triage.iloc[-1]["engine"], "the last engine of triage comes first"


def test_the_sort_follows_the_filters(scored: dict[str, float]) -> None:
    low = score_queries.FleetFilter(("test_FD001",), ("LOW",), (0.0, 125.0))
    rows = _page(score_queries.FleetSort("p_fail_30", descending=False), 1, 100, low)
    assert set(rows["risk"]) == {"LOW"} and rows["p_fail_30"].is_monotonic_increasing
    assert len(rows) == sum(1 for u in range(1, 101) if (u * 53) % 100 < 30)


def test_engine_ids_sort_in_natural_order_and_missing_truth_comes_last(scored: dict[str, float]) -> None:
    ids = _page(score_queries.FleetSort("engine", descending=False), 1, 200,
                score_queries.FleetFilter(("test_FD001",), ALL_RISKS, (0.0, 125.0)))["engine"].tolist()
    assert ids == [str(u) for u in range(1, 101)], "7 before 10, not after"
    for descending in (True, False):
        rows = _page(score_queries.FleetSort("true_rul", descending), 1, 200)
        assert rows["true_rul"].iloc[:100].notna().all() and rows["true_rul"].iloc[100:].isna().all()
        assert rows["true_rul"].iloc[:100].is_monotonic_decreasing == descending


def test_only_whitelisted_columns_reach_the_sql() -> None:
    for column in ("rul; DROP TABLE predictions", "ood_reason", "unit", "created_at"):
        with pytest.raises(UserError, match="cannot be sorted by"):
            score_queries.FleetSort(column)
    assert set(fleet.SORT_LABELS) == set(fleet.FIRST_DESCENDING) == set(score_queries.SORT_KEYS)
    assert set(score_queries.SORT_KEYS) <= set(score_queries.TABLE_COLUMNS)


def test_the_fleet_csv_neutralises_formulas_in_engine_ids_and_keeps_numbers(scored: dict[str, float]) -> None:
    with store.connect(read_only=True) as con:
        table = score_queries.fleet_all(con, 1, score_queries.FleetFilter(("line-a",), ALL_RISKS, (-10.0, 125.0)))
    text = fleet.csv_table(table, 1, "2026-12-04 10:00:00 UTC").decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    engines = [row[header.index("engine")] for row in rows]
    assert sorted(engines) == sorted(["'=1+2", "'=HYPERLINK(\"http://x\")", "'-5", "'@SUM(A1)", "'+7", "ESN-7"])
    assert not any(field.startswith(("=", "+", "-", "@")) for row in rows for field in row
                   if not field.lstrip("-").replace(".", "", 1).isdigit()), "only numbers may start with -"
    negative = rows[engines.index("'-5")]
    assert negative[header.index("rul")] == "-3.5" and negative[header.index("rul_low")] == "-8.5"
    frame = pd.read_csv(io.StringIO(text))
    assert frame["rul"].dtype == float and frame.loc[frame["engine"] == "'-5", "rul"].item() == -3.5
