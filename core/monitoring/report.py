"""The drift report as one self-contained HTML file, to send to a colleague: the verdict, every sensor's scores
and level, the multivariate score, drift over time and the data-quality findings, with every chart embedded
(plotly.js inline, no request to any other host). ``python -m core drift --html FILE`` and the Drift page's
Download button write it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd
import plotly.graph_objects as go

from core.errors import UserError
from core.monitoring import history, multivariate, quality

STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.alert{background:#fde2e1}.warn{background:#fff4d6}
.muted{color:#777}"""


@dataclass(frozen=True)
class Extras:
    """What the report shows beside the per-sensor comparison: the multivariate score, the data-quality table of the
    current dataset's loads and its drift per load (each None with the reason in ``notes`` when it could not be
    measured)."""

    multivariate: multivariate.MultivariateDrift | None
    quality: pd.DataFrame | None
    history: pd.DataFrame | None
    notes: tuple[str, ...] = ()


def collect(con: duckdb.DuckDBPyConnection, reference: Sequence[str], current: str, reference_frame: pd.DataFrame,
            current_frame: pd.DataFrame) -> Extras:
    """The :class:`Extras` of comparing dataset ``current`` (read as ``current_frame``) with ``reference`` (read as
    ``reference_frame``, the rows the per-sensor verdict was judged on)."""
    notes = []
    try:
        score = multivariate.measure(reference_frame, current_frame)
    except UserError as err:
        score = None
        notes.append(f"Multivariate drift not measured: {err}")
    table = quality.check(con, current, reference)
    points = history.compute(con, current, reference, "load").points
    return Extras(score, table, points, tuple(notes))


def score_figure(features: pd.DataFrame, method: str, warn: float, alert: float) -> go.Figure:
    """Every sensor's score of ``method``, coloured by level, with the warn and alert thresholds."""
    colours = {"alert": "#d62728", "warn": "#ff7f0e", "none": "#2ca02c"}
    bar_colours = [colours.get(level, "#888") if informative else "#bbb"
                   for level, informative in zip(features["level"], features["informative"], strict=True)]
    figure = go.Figure(go.Bar(x=features[method], y=features["feature"], orientation="h", marker_color=bar_colours))
    figure.add_vline(x=warn, line_dash="dot", line_color="#ff7f0e", annotation_text="warn")
    figure.add_vline(x=alert, line_dash="dash", line_color="#d62728", annotation_text="alert")
    figure.update_layout(title=f"{method.upper()} per sensor (grey: near-constant in the reference, not counted)",
                         height=560, margin={"l": 90, "r": 20, "t": 50, "b": 40},
                         yaxis={"autorange": "reversed"}, xaxis_title=method)
    return figure


def history_figure(points: pd.DataFrame, period: str, share_threshold: float) -> go.Figure:
    """Drift share per period (one marker per load or week), the readings each brought as hover text."""
    label = "load" if period == "load" else "calendar week of loading"
    x = [f"load {k}" for k in points["period_key"]] if period == "load" else list(points["period_key"])
    figure = go.Figure(go.Scatter(
        x=x, y=points["drift_share"], mode="lines+markers", name="drift share",
        customdata=points[["engines", "readings", "out_of_range"]].to_numpy(),
        hovertemplate="%{x}: drift share %{y:.2f}<br>%{customdata[1]:,} readings of %{customdata[0]:,} engines"
                      "<br>%{customdata[2]:,} outside the reference range<extra></extra>"))
    figure.add_hline(y=share_threshold, line_dash="dash", line_color="#d62728", annotation_text="retrain share")
    figure.update_layout(title=f"Drift share per {label} (raw PSI against the reference)", height=340,
                         yaxis={"range": [0, 1.05], "title": "drift share"}, xaxis={"type": "category"},
                         margin={"l": 60, "r": 20, "t": 50, "b": 40})
    return figure


def _table(frame: pd.DataFrame, classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        css = f' class="{classes[i]}"' if classes and classes[i] in ("alert", "warn") else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return str(value)


def render(result: dict[str, Any], reference_label: str, current_label: str, extras: Extras,
           notes: Sequence[str] = ()) -> str:
    """The whole report as HTML. ``result`` is a :class:`core.monitoring.verdicts.DriftReport` as a dict; every
    name and sentence is escaped (dataset names are the user's)."""
    features = pd.DataFrame(result["features"])
    method = result["method"]
    limits = result["thresholds"]
    warn, alert = limits[f"{method}_warn"], limits[f"{method}_alert"]
    verdict = result["verdict"]
    view = "regime-normalised" if result["normalised"] else "raw"
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<h1>Drift report: {html.escape(current_label)} vs {html.escape(reference_label)}</h1>",
             f'<p class="muted">Made {made}; {view} values, decided by {html.escape(method)}.</p>']
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    advice = " (retraining recommended)" if verdict["retrain_recommended"] else ""
    parts.append(f"<h2>Verdict: {html.escape(verdict['level'])}{advice}</h2><ul>"
                 + "".join(f"<li>{html.escape(s)}</li>" for s in verdict["explanation"]) + "</ul>")
    psi = result.get("prediction_psi")
    parts.append(f"<p>Drift share {result['drift_share']:.3f}; prediction PSI "
                 f"{'n/a (' + html.escape(str(result.get('prediction_psi_reason'))) + ')' if psi is None else f'{psi:.3f}'}"
                 "</p>")
    parts.append("<h2>Multivariate drift</h2>")
    if extras.multivariate is not None:
        parts.append(f"<p>{html.escape(extras.multivariate.sentence())} It measures how badly the reference's "
                     "principal components reconstruct the current readings: a change in how the sensors move "
                     "together, which a per-sensor test can miss.</p>")
    parts += [f"<p>{html.escape(n)}</p>" for n in extras.notes]
    figures = [score_figure(features, method, warn, alert)]
    parts.append("<h2>Every sensor</h2><!--figure0-->")
    shown = features[["feature", "psi", "ks", "ks_p_value", "wasserstein", "level", "informative"]]
    parts.append(_table(shown, list(features["level"])))
    parts.append("<h2>Drift per load of the current dataset</h2>")
    if extras.history is not None and not extras.history.empty:
        figures.append(history_figure(extras.history, "load", limits["share"]))
        parts.append("<!--figure1-->")
        parts.append(_table(extras.history))
    else:
        parts.append("<p>No loads are recorded for the current data.</p>")
    parts.append("<h2>Data quality per load</h2>")
    if extras.quality is not None:
        found = quality.findings(extras.quality)
        parts.append("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in found) + "</ul>" if found
                     else "<p>No missing or repeated cycles, stuck sensors or values outside the training range.</p>")
        parts.append(_table(extras.quality))
    body = "\n".join(parts)
    charts = {f"<!--figure{i}-->": figure.to_html(full_html=False, include_plotlyjs=i == 0, include_mathjax=False,
                                           config={"displaylogo": False})
              for i, figure in enumerate(figures)}
    for key, chart in charts.items():
        body = body.replace(key, chart)
    title = html.escape(f"Drift report: {current_label} vs {reference_label}")
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>'
            f"<body>{body}</body></html>")
