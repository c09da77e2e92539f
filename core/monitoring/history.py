"""Drift over time of a growing dataset: the readings each load brought (``reading_loads``), or all the loads of a
calendar week, judged against a reference, one point per period.

Each point is the raw-value PSI of every sensor against the reference's quantile bins and the share of informative
sensors at or above the PSI alert threshold, plus the readings outside the range the reference spans. A period holding
more than :data:`core.monitoring.drift.MAX_SIDE_ROWS` readings is judged on a seeded sample of whole engines, as the
Drift page samples a side (``compared`` is the readings judged, ``readings`` all of the period's). The current
side is binned inside DuckDB (:mod:`core.monitoring.profile`), so a 20,000-engine fleet is never read into pandas;
the reference (a model's training data) is read as the Drift page reads it (whole up to
:data:`core.monitoring.drift.MAX_SIDE_ROWS` readings, else a seeded sample of whole engines). Figures are stored in
``drift_history`` with the row counts they were computed from, and computed again when those change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from core.data import queries, store
from core.errors import UserError
from core.monitoring import drift
from core.monitoring.profile import Profile, bin_sql, psi_from_counts
from core.monitoring.statistics import Thresholds

PERIODS = ("load", "week")
"""``load``: the readings of each load (a file or an append); ``week``: of all the loads of one ISO calendar week."""

_PERIOD_SQL = {
    "load": "CAST(l.load_no AS VARCHAR)",
    "week": "strftime(date_trunc('week', l.loaded_at), '%G-W%V')",
}
COLUMNS = ["period_key", "starts_at", "engines", "readings", "compared", "drift_share", "drifted", "out_of_range"]


@dataclass(frozen=True)
class History:
    """Drift per period of ``dataset`` against ``reference`` (``points``: one row per period, see :data:`COLUMNS`)."""

    dataset: str
    reference: tuple[str, ...]
    period: str
    points: pd.DataFrame
    reference_read: drift.Sample

    def to_dict(self) -> dict:
        """A JSON-serialisable copy."""
        points = self.points.assign(starts_at=self.points["starts_at"].astype(str))
        return {"dataset": self.dataset, "reference": list(self.reference), "period": self.period,
                "points": points.to_dict(orient="records"), "reference_read": self.reference_read.to_dict()}


def check_period(period: str) -> None:
    """UserError unless ``period`` is one of :data:`PERIODS`."""
    if period not in PERIODS:
        raise UserError(f"Drift over time is by {' or '.join(PERIODS)}, not '{period}'.")


def _stamp(con: duckdb.DuckDBPyConnection, dataset_id: int, reference: Sequence[str]) -> str:
    """The row counts of the dataset and of the reference datasets: figures computed at another stamp are stale."""
    rows = [int(queries.get_dataset(con, name)["rows"]) for name in reference]
    (current,) = store.first_row(con, "SELECT rows FROM datasets WHERE id = ?", [dataset_id]) or (0,)
    loads = store.first_row(con, "SELECT count(DISTINCT load_no) FROM reading_loads WHERE dataset_id = ?",
                            [dataset_id]) or (0,)
    return f"{current}:{loads[0]}:" + ",".join(str(r) for r in rows)


def compute(con: duckdb.DuckDBPyConnection, dataset: str, reference: Sequence[str], period: str = "load",
            thresholds: Thresholds | None = None, max_rows: int = drift.MAX_SIDE_ROWS, seed: int = 0) -> History:
    """Drift of each period of ``dataset`` against ``reference``, computed now (one SQL pass over the dataset). A
    period holding more than ``max_rows`` readings is judged on a seeded sample of whole engines (chosen by a hash
    of the engine and ``seed``, about ``max_rows`` readings); ``compared`` says how many readings were."""
    check_period(period)
    limits = thresholds or Thresholds()
    found = queries.get_dataset(con, dataset)
    ref_frame, read = drift.read_side(con, list(reference))
    if ref_frame.empty:
        raise UserError("The reference holds no readings, so there is nothing to compare with.")
    profile = Profile.of(ref_frame)
    selects, params = [], []
    for sensor in profile.sensors:
        expression, edges = bin_sql(sensor)
        selects.append(f"histogram({expression}) AS h_{sensor.name}")
        params.extend(edges)
    outside = " OR ".join(f"r.{s.name} < ? OR r.{s.name} > ?" for s in profile.sensors)
    range_params = [v for s in profile.sensors for v in (s.low, s.high)]
    period_of = _PERIOD_SQL[period]
    sql = (f"WITH per AS (SELECT {period_of} AS period_key, min(l.loaded_at) AS starts_at, count(DISTINCT l.unit) "
           "AS engines, sum(l.last_cycle - l.first_cycle + 1) AS total FROM reading_loads l WHERE l.dataset_id = ? "
           "GROUP BY period_key), "
           f"kept AS (SELECT l.*, per.period_key FROM reading_loads l JOIN per ON per.period_key = {period_of} "
           "WHERE l.dataset_id = ? AND hash(l.unit + ?) % 1000000 < 1000000 * least(1.0, ? / per.total)) "
           "SELECT l.period_key, any_value(per.starts_at) AS starts_at, any_value(per.engines) AS engines, "
           "any_value(per.total) AS readings, count(*) AS compared, "
           f"count(*) FILTER (WHERE {outside}) AS out_of_range, {', '.join(selects)} "
           "FROM readings r JOIN kept l ON l.unit = r.unit AND r.cycle BETWEEN l.first_cycle AND l.last_cycle "
           "JOIN per ON per.period_key = l.period_key WHERE r.dataset_id = ? "
           "GROUP BY l.period_key ORDER BY starts_at, l.period_key")
    raw = con.execute(sql, [found["id"], found["id"], seed, max_rows] + range_params + params
                      + [found["id"]]).df()
    _, alert = limits.levels("psi")
    rows = []
    for _, row in raw.iterrows():
        scores = {s.name: psi_from_counts(s, dict(row[f"h_{s.name}"])) for s in profile.sensors}
        informative = [s.name for s in profile.sensors if s.informative]
        drifted = [name for name in informative if scores[name] >= alert]
        rows.append({"period_key": row["period_key"], "starts_at": row["starts_at"], "engines": int(row["engines"]),
                     "readings": int(row["readings"]), "compared": int(row["compared"]),
                     "drift_share": len(drifted) / len(informative) if informative else None,
                     "drifted": ",".join(drifted), "out_of_range": int(row["out_of_range"])})
    return History(found["name"], tuple(reference), period, pd.DataFrame(rows, columns=COLUMNS), read)


def stored(con: duckdb.DuckDBPyConnection, dataset: str, reference: Sequence[str], period: str) -> pd.DataFrame | None:
    """The figures stored for this dataset, reference and period when they are current (same stamp), else None."""
    found = queries.get_dataset(con, dataset)
    key = ",".join(reference)
    frame = con.execute(
        f"SELECT stamp, {', '.join(COLUMNS)} FROM drift_history WHERE dataset_id = ? AND reference = ? AND period = ? "
        "ORDER BY starts_at, period_key", [found["id"], key, period]).df()
    if frame.empty or set(frame["stamp"]) != {_stamp(con, found["id"], reference)}:
        return None
    return frame[COLUMNS]


def save(history: History) -> None:
    """Replace the stored figures of this dataset, reference and period with ``history``'s (one transaction)."""

    def work(con: duckdb.DuckDBPyConnection) -> None:
        found = queries.get_dataset(con, history.dataset)
        key = ",".join(history.reference)
        stamp = _stamp(con, found["id"], history.reference)
        now = store.utc_now()
        with store.transaction(con):
            con.execute("DELETE FROM drift_history WHERE dataset_id = ? AND reference = ? AND period = ?",
                        [found["id"], key, history.period])
            for point in history.points.itertuples(index=False):
                con.execute("INSERT INTO drift_history VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [found["id"], key, history.period, point.period_key, point.starts_at, point.engines,
                             point.readings, point.compared, point.drift_share, point.drifted, point.out_of_range,
                             stamp, now])

    store.write(work)


def over_time(dataset: str, reference: Sequence[str], period: str = "load") -> pd.DataFrame:
    """The drift per period (:data:`COLUMNS`): the stored figures when current, else computed now and stored (when
    this process may write the store; a read-only store still gets the figures, unstored)."""
    check_period(period)
    with store.connect(read_only=True) as con:
        found = stored(con, dataset, reference, period)
        if found is not None:
            return found
        history = compute(con, dataset, reference, period)
    if store.prepare():
        save(history)
    return history.points
