"""The plan as downloads: a CSV of every engine's row, and a printable work package (HTML) for one week.

The CSV goes through the product's one export function (:func:`core.data.exports.csv_bytes`), which prefixes
text cells a spreadsheet would read as a formula with ``'``. Every string in the work package is HTML-escaped:
engine ids, dataset names and reasons are data, never markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import pandas as pd

from core.data import sensors
from core.data.exports import csv_bytes
from core.planning.planner import Plan

CSV_COLUMNS = ["week", "week_start", "status", "dataset", "engine", "p_fail_before", "expected_cost", "rul",
               "p_fail_30", "risk", "cycle", "cycles_per_day", "own_week", "reason"]
CSV_DECIMALS = {"p_fail_before": 4, "expected_cost": 2, "rul": 1, "p_fail_30": 3, "cycles_per_day": 2}


def plan_csv(plan: Plan, model_version: int) -> bytes:
    """Every engine's row as CSV, with the model version and the plan's start date on every row."""
    out = plan.engines[CSV_COLUMNS].round(CSV_DECIMALS)
    return csv_bytes(out.assign(model_version=model_version, plan_start=plan.meta["request"]["start"]))


_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
          "th,td{border:1px solid #999;padding:4px 8px;text-align:left;vertical-align:top}"
          "th{background:#eee}@media print{body{margin:0}}")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def work_package_html(plan: Plan, week: int, readings: pd.DataFrame, model_version: int,
                      shown_sensors: Sequence[str],
                      explanations: Mapping[tuple[str, int], Sequence[str]] | None = None) -> str:
    """A printable page for the engines of `week`: who, why, the latest readings (`readings`: dataset, unit and
    the storage-named columns of each engine's last cycle; `shown_sensors` the columns shown) and, given
    `explanations` ((dataset, unit) -> sentences, :func:`core.planning.service.week_explanations`), what drives
    each engine's predicted RUL."""
    part = plan.engines[plan.engines["week"] == week]
    info = plan.meta["request"]
    starts = plan.weeks.set_index("week")["week_start"]
    start = str(starts.get(week, ""))
    records = part.to_dict(orient="records")
    rows = [[str(r["engine"]), str(r["dataset"]), str(r["status"]), f"{r['p_fail_before']:.1%}", f"{r['rul']:.0f}",
             f"{r['p_fail_30']:.1%}", str(r["risk"]), str(int(r["cycle"])), str(r["reason"])] for r in records]
    engines = _table(["engine", "dataset", "status", "P(fail before the slot)", "predicted RUL (cycles)",
                      "P(fail within 30 cycles)", "risk", "last cycle", "reason"], rows)
    latest_of = {(str(row["dataset"]), int(row["unit"])): row for row in readings.to_dict(orient="records")}
    reading_rows = []
    for r in records:
        last = latest_of.get((str(r["dataset"]), int(r["unit"])))
        if last is None:
            continue
        reading_rows.append([str(r["engine"]), str(r["dataset"]), str(int(last["cycle"]))]
                            + [f"{float(last[c]):.4g}" for c in shown_sensors])
    latest = _table(["engine", "dataset", "cycle", *[sensors.label(c) for c in shown_sensors]], reading_rows)
    drivers = ""
    if explanations is not None:
        items = []
        for r in records:
            lines = explanations.get((str(r["dataset"]), int(r["unit"])))
            if lines:
                said = "".join(f"<li>{html.escape(line)}</li>" for line in lines)
                items.append(f"<h3>{html.escape(str(r['engine']))} ({html.escape(str(r['dataset']))})</h3>"
                             f"<ul>{said}</ul>")
        drivers = ("<h2>What drives each engine's predicted RUL</h2><p>SHAP attributions of the model's prediction "
                   "at the engine's scored cycle, in cycles of RUL.</p>" + "".join(items))
    costs = info["costs"]
    title = f"Work package: week {week}, from {start}"
    summary = (f"{len(part)} engine(s) to remove by the end of the week. Plan of model v{model_version}, starting "
               f"{info['start']} over {info['weeks']} week(s); costs: unscheduled failure ${costs['failure']:,.0f}, "
               f"planned removal ${costs['removal']:,.0f}, life given up ${costs['life_per_cycle']:,.2f} per cycle.")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(summary)}</p>"
        f"<h2>Engines</h2>{engines}<h2>Latest readings</h2>{latest}{drivers}</body></html>"
    )
