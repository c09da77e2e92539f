"""Operating a running fleet: readings that arrive, outcomes that close engines, and live accuracy.

An outcome ``failure`` or ``removal`` at cycle N closes an in-service engine: its readings are copied,
as a run-to-failure engine, into the history dataset ``<dataset>-closed`` (created on first use), whose
``rul_truth`` holds the cycles between the last reading and N (0 when the outcome is recorded at the last
reading), so the next training learns from it; the engine then leaves the in-service lists. The copy's lineage
(the dataset and engine id it was closed in) is recorded in ``engine_sources``: training uses it to keep an
evaluation engine that entered a model's training out of that model's test figures. An
``inspection`` is only recorded. Every outcome lands in ``feedback`` with its time and the model version
serving then; nothing is ever deleted by an outcome.

Live accuracy compares every stored prediction of a closed engine made before its outcome was recorded with the
RUL that was realised. A later prediction is no forecast, and any model trained on the engine's closed copy is
trained after the outcome, so none of its predictions on that engine counts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.data import queries, store, writes
from core.data.cmapss import FAIL_HORIZON, RUL_CAP
from core.data.validation import validate_readings
from core.errors import UserError

EVENTS = ("failure", "removal", "inspection")
CLOSING_EVENTS = ("failure", "removal")
CLOSED_SUFFIX = "-closed"


def history_name(dataset: str) -> str:
    """The history dataset that receives the closed engines of `dataset`."""
    return f"{dataset}{CLOSED_SUFFIX}"


def append_readings(dataset: str, rows: pd.DataFrame, role: str = "fleet", source: str = "api") -> dict[str, Any]:
    """Validate `rows` (``engine``, ``cycle`` and the value columns) and append them to `dataset`.

    Same checks and semantics as loading a file: the dataset is created with `role` if absent; identical
    rows are a no-op; a conflicting value, or a cycle before an engine's last stored one, is refused with
    a UserError and nothing is written.
    """
    if role not in store.IN_SERVICE_ROLES:
        raise UserError(f"Readings are appended to fleet or evaluation datasets, not to {role} ones.")

    def append(con: Any) -> dict[str, Any]:
        found = queries.find_dataset(con, dataset)
        subset = str(found["subset"]) if found else "user"
        return writes.append_readings(con, dataset, subset, str(found["role"]) if found else role, source,
                                      rows).to_dict()

    return store.write(append)


def record_outcome(dataset: str, engine: str, cycle: int, event: str, note: str = "",
                   model_version: str | int | None = None) -> dict[str, Any]:
    """Record an outcome for one engine of an in-service dataset; close it on a failure or removal.

    Refused (UserError, nothing written) for an unknown dataset or engine, an unknown event, a cycle
    before the engine's last reading, or an engine already closed.
    """
    if event not in EVENTS:
        raise UserError(f"The event '{event}' is not one of {', '.join(EVENTS)}.")
    if isinstance(cycle, bool) or int(cycle) != cycle or cycle < 1:
        raise UserError(f"The cycle must be a positive whole number; got {cycle}.")
    cycle = int(cycle)

    def record(con: Any) -> dict[str, Any]:
        found = queries.get_dataset(con, dataset)
        if found["role"] not in store.IN_SERVICE_ROLES:
            raise UserError(f"'{dataset}' is a {found['role']} dataset; outcomes are recorded for engines in "
                            "service (fleet or evaluation datasets).")
        info = queries.find_engine(con, dataset, engine)
        if info is None:
            raise UserError(f"Dataset '{dataset}' has no engine '{engine}'.")
        if info["closed_event"] is not None:
            raise UserError(f"Engine {engine} of '{dataset}' was already closed by a {info['closed_event']} at "
                            f"cycle {info['closed_cycle']}.")
        last = int(info["last_cycle"])
        if cycle < last:
            raise UserError(f"Engine {engine} of '{dataset}' has readings up to cycle {last}; an outcome at cycle "
                            f"{cycle} would come before its last reading.")
        version = None if model_version is None else str(model_version)
        with store.transaction(con):
            con.execute("INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [store.utc_now(), found["id"], int(info["unit"]), cycle, event, note or None, version])
            result = {"dataset": dataset, "engine": str(engine), "cycle": cycle, "event": event, "note": note,
                      "model_version": version, "closed": event in CLOSING_EVENTS, "history_dataset": None}
            if event in CLOSING_EVENTS:
                result["history_dataset"] = _close(con, found, info, cycle, event)
        return result

    return store.write(record)


def _close(con: Any, found: dict, info: dict, cycle: int, event: str) -> str:
    """Mark the engine closed and copy its readings, with their lineage, into the history dataset (caller's
    transaction)."""
    con.execute("UPDATE engines SET closed_cycle = ?, closed_event = ?, closed_at = ? WHERE dataset_id = ? "
                "AND unit = ?", [cycle, event, store.utc_now(), found["id"], int(info["unit"])])
    rows = queries.engine_readings(con, found["name"], int(info["unit"]))
    target = history_name(str(found["name"]))
    existing = queries.find_dataset(con, target)
    if existing is not None and existing["role"] != "history":
        raise UserError(f"The dataset '{target}' exists but is not a history dataset; rename it to record "
                        "closed engines.")
    if existing is not None and queries.find_engine(con, target, str(info["engine"])) is not None:
        raise UserError(f"The history dataset '{target}' already holds an engine {info['engine']} closed earlier "
                        f"(before '{found['name']}' was loaded again), so this outcome was not recorded; give the "
                        f"engine a new id, or delete '{target}' if its engines should not be trained on.")
    next_unit = 1 if existing is None else 1 + int(
        con.execute("SELECT coalesce(max(unit), 0) FROM engines WHERE dataset_id = ?", [existing["id"]]).fetchall()[0][0])
    arrays = validate_readings(rows.assign(unit=next_unit), f"Engine {info['engine']}")
    arrays["engine"] = np.full(len(rows), str(info["engine"]), dtype=object)
    if existing is None:
        target_id = writes.add_dataset(con, target, str(found["subset"]), "history",
                                       f"closed engines of {found['name']}", arrays)
    else:
        target_id = int(existing["id"])
        writes.insert_history_engine(con, target_id, arrays)
    con.execute("INSERT INTO rul_truth VALUES (?, ?, ?)", [target_id, next_unit, cycle - int(info["last_cycle"])])
    con.execute("INSERT INTO engine_sources VALUES (?, ?, ?, ?)",
                [target_id, next_unit, str(found["name"]), str(info["engine"])])
    return target


def engine_history(dataset: str, engine: str) -> dict[str, Any]:
    """One engine's state, its latest stored prediction and every stored prediction and outcome, oldest first."""
    with store.connect(read_only=True) as con:
        found = queries.get_dataset(con, dataset)
        info = queries.find_engine(con, dataset, engine)
        if info is None:
            raise UserError(f"Dataset '{dataset}' has no engine '{engine}'.")
        predictions = con.execute(
            "SELECT created_at, cycle, model_version, rul, rul_low, rul_high, p_fail_30, risk FROM predictions "
            "WHERE dataset_id = ? AND unit = ? ORDER BY created_at, cycle", [found["id"], int(info["unit"])]).df()
        outcomes = con.execute(
            "SELECT created_at, cycle, outcome AS event, note, model_version FROM feedback WHERE dataset_id = ? "
            "AND unit = ? ORDER BY created_at", [found["id"], int(info["unit"])]).df()
    records = predictions.astype(object).where(predictions.notna(), None).to_dict(orient="records")
    return {
        "dataset": dataset, "engine": str(info["engine"]), "role": found["role"],
        "first_cycle": _int(info["first_cycle"]), "last_cycle": _int(info["last_cycle"]),
        "closed": info["closed_event"] is not None, "closed_event": info["closed_event"],
        "closed_cycle": _int(info["closed_cycle"]),
        "latest_prediction": records[-1] if records else None, "predictions": records,
        "outcomes": outcomes.astype(object).where(outcomes.notna(), None).to_dict(orient="records"),
    }


def _int(value: float | np.integer | np.floating | None) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def realised_predictions(con: Any) -> pd.DataFrame:
    """Every stored prediction of an engine closed by a failure or removal, made before the outcome was recorded,
    with the RUL realised since.

    Columns: dataset, engine, unit, cycle, model_version, rul, rul_low, rul_high, p_fail_30, risk,
    closed_cycle, realised_rul (closed cycle minus the prediction's cycle).
    """
    return con.execute(
        "SELECT d.name AS dataset, e.engine, p.unit, p.cycle, p.model_version, p.rul, p.rul_low, p.rul_high, "
        "p.p_fail_30, p.risk, e.closed_cycle, e.closed_cycle - p.cycle AS realised_rul "
        "FROM predictions p JOIN engines e ON e.dataset_id = p.dataset_id AND e.unit = p.unit "
        "JOIN datasets d ON d.id = p.dataset_id WHERE e.closed_event IN ('failure', 'removal') "
        "AND p.cycle <= e.closed_cycle AND p.created_at <= e.closed_at ORDER BY d.name, p.unit, p.cycle"
    ).df()


def accuracy(frame: pd.DataFrame, cap: int = RUL_CAP, horizon: int = FAIL_HORIZON) -> pd.DataFrame:
    """Live accuracy by model version from :func:`realised_predictions`.

    Per version: engines, predictions, RMSE and MAE against the realised RUL capped at `cap` (the target
    definition), interval coverage, and recall and precision of HIGH for "fails within `horizon` cycles"
    (None where undefined).
    """
    columns = ["model_version", "engines", "predictions", "rmse", "mae", "coverage", "high_recall", "high_precision"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for version, part in frame.groupby("model_version", sort=True):
        truth = np.minimum(part["realised_rul"].to_numpy(dtype=float), cap)
        error = part["rul"].to_numpy(dtype=float) - truth
        inside = (truth >= part["rul_low"].to_numpy(dtype=float)) & (truth <= part["rul_high"].to_numpy(dtype=float))
        fails = part["realised_rul"].to_numpy(dtype=float) <= horizon
        high = part["risk"].to_numpy() == "HIGH"
        rows.append({
            "model_version": str(version),
            "engines": int(part[["dataset", "unit"]].drop_duplicates().shape[0]),
            "predictions": len(part),
            "rmse": float(np.sqrt(np.mean(error ** 2))),
            "mae": float(np.mean(np.abs(error))),
            "coverage": float(inside.mean()),
            "high_recall": float((high & fails).sum() / fails.sum()) if fails.any() else None,
            "high_precision": float((high & fails).sum() / high.sum()) if high.any() else None,
        })
    return pd.DataFrame(rows, columns=columns)


def live_accuracy() -> dict[str, Any]:
    """Live accuracy of every model version on closed engines, with the totals and, per closed engine (by the
    operator's engine id), its predictions counted (``core accuracy``)."""
    with store.connect(read_only=True) as con:
        realised = realised_predictions(con)
    table = accuracy(realised)
    records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
    by_engine = [] if realised.empty else [
        {"dataset": str(dataset), "engine": str(engine), "closed_cycle": int(part["closed_cycle"].iloc[0]),
         "predictions": len(part), "versions": sorted({str(v) for v in part["model_version"]})}
        for (dataset, engine), part in realised.groupby(["dataset", "engine"], sort=True)]
    return {"engines": len(by_engine), "predictions": len(realised), "by_version": records, "by_engine": by_engine}
