"""Accepted plans: who accepted which plan when, under which model version, with every engine's row.

Kept in the tables ``plans`` and ``plan_rows``, created by the first acceptance (``CREATE ... IF NOT EXISTS``,
through the store's one writer path, in the acceptance's transaction), so that a later page can compare a plan
with what happened to its engines (the outcomes recorded in ``engines`` and ``feedback``).
"""

from __future__ import annotations

import json

import duckdb
import pandas as pd

from core.data import store
from core.data.store import first_row, utc_now
from core.errors import UserError
from core.planning.planner import Plan

_CREATE = [
    "CREATE SEQUENCE IF NOT EXISTS plans_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS plans (
        id INTEGER PRIMARY KEY DEFAULT nextval('plans_id_seq'), accepted_at TIMESTAMP NOT NULL,
        accepted_by VARCHAR NOT NULL, model_version VARCHAR NOT NULL, start_date DATE NOT NULL,
        weeks INTEGER NOT NULL, request VARCHAR NOT NULL, engines INTEGER NOT NULL, planned INTEGER NOT NULL,
        expected_cost DOUBLE NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS plan_rows (
        plan_id INTEGER NOT NULL, dataset_id INTEGER NOT NULL, unit INTEGER NOT NULL, engine VARCHAR NOT NULL,
        cycle INTEGER NOT NULL, rul DOUBLE NOT NULL, week INTEGER, week_start DATE, status VARCHAR NOT NULL,
        p_fail_before DOUBLE, expected_cost DOUBLE, reason VARCHAR NOT NULL, PRIMARY KEY (plan_id, dataset_id, unit))""",
]
ROW_COLUMNS = ["dataset", "engine", "unit", "cycle", "rul", "week", "week_start", "status", "p_fail_before",
               "expected_cost", "reason"]


def accept(plan: Plan, model_version: int, by: str) -> int:
    """Store `plan` as accepted by `by` under `model_version`, in one transaction; return its id."""
    if not str(by).strip():
        raise UserError("An accepted plan needs the name of who accepts it.")
    rows = plan.engines[ROW_COLUMNS]
    request = plan.meta["request"]
    cost = float(plan.policies.loc[plan.policies["policy"] == "Plan", "expected_cost"].iloc[0])

    def write(con: duckdb.DuckDBPyConnection) -> int:
        with store.transaction(con):
            for statement in _CREATE:
                con.execute(statement)
            (plan_id,) = con.execute(
                "INSERT INTO plans (accepted_at, accepted_by, model_version, start_date, weeks, request, engines, "
                "planned, expected_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                [utc_now(), str(by), str(model_version), request["start"], int(request["weeks"]), json.dumps(request),
                 int(plan.meta["engines"]), int(plan.meta["planned"]), cost]).fetchall()[0]
            con.register("accepted_rows", rows)
            try:
                con.execute(
                    "INSERT INTO plan_rows SELECT ?, d.id, CAST(a.unit AS INTEGER), a.engine, CAST(a.cycle AS INTEGER), "
                    "a.rul, CAST(a.week AS INTEGER), CAST(NULLIF(a.week_start, '') AS DATE), a.status, a.p_fail_before, "
                    "a.expected_cost, a.reason FROM accepted_rows a JOIN datasets d ON d.name = a.dataset",
                    [plan_id])
            finally:
                con.unregister("accepted_rows")
            (stored,) = first_row(con, "SELECT count(*) FROM plan_rows WHERE plan_id = ?", [plan_id]) or (0,)
            if stored != len(rows):
                raise UserError("Some engines of the plan belong to a dataset that is no longer loaded; the plan was "
                                "not stored.")
            return int(plan_id)

    return store.write(write)


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    return first_row(con, "SELECT 1 FROM information_schema.tables WHERE table_name = 'plans'") is not None


def list_plans(con: duckdb.DuckDBPyConnection, limit: int = 20) -> pd.DataFrame:
    """The newest accepted plans: id, accepted_at, accepted_by, model_version, start_date, weeks, engines, planned,
    expected_cost (empty before the first)."""
    if not _exists(con):
        return pd.DataFrame(columns=["id", "accepted_at", "accepted_by", "model_version", "start_date", "weeks",
                                     "engines", "planned", "expected_cost"])
    return con.execute("SELECT id, accepted_at, accepted_by, model_version, start_date, weeks, engines, planned, "
                       "expected_cost FROM plans ORDER BY id DESC LIMIT ?", [int(limit)]).df()


def plan_rows(con: duckdb.DuckDBPyConnection, plan_id: int) -> pd.DataFrame:
    """The engine rows of accepted plan `plan_id` (:data:`ROW_COLUMNS`); UserError when there is no such plan."""
    if not _exists(con) or first_row(con, "SELECT 1 FROM plans WHERE id = ?", [int(plan_id)]) is None:
        raise UserError(f"No accepted plan has the id {plan_id}.")
    return con.execute(
        "SELECT d.name AS dataset, r.engine, r.unit, r.cycle, r.rul, r.week, r.week_start, r.status, r.p_fail_before, "
        "r.expected_cost, r.reason FROM plan_rows r JOIN datasets d ON d.id = r.dataset_id WHERE r.plan_id = ? "
        "ORDER BY r.week NULLS LAST, d.name, r.engine", [int(plan_id)]).df()
