"""Plotly figure builders for the pages (no streamlit here, so they are unit-testable)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.data import sensors as sensor_table
from models.explanation import APPROXIMATION, apportion

if TYPE_CHECKING:
    from models.explanation import Breakdown


def plain(value: object) -> str:
    """`value` (a name a user gave) as plotly text that shows literally: plotly reads a subset of HTML (links, bold,
    line breaks) in titles, legends, annotations and hover texts, so ``<``, ``>`` and ``&`` are written as
    entities."""
    return html.escape(str(value), quote=False)


def loss_curves(losses: list[dict[str, Any]]) -> go.Figure:
    """Training and validation loss per step: one panel per training phase (their scales differ)."""
    frame = pd.DataFrame(losses)
    phases = list(dict.fromkeys(frame["phase"])) if not frame.empty else []
    fig = make_subplots(rows=1, cols=max(len(phases), 1), subplot_titles=phases or None)
    for col, phase in enumerate(phases, start=1):
        part = frame[frame["phase"] == phase]
        for column in [c for c in part.columns if c.endswith("loss") and part[c].notna().any()]:
            fig.add_trace(
                go.Scatter(x=part["step"], y=part[column], mode="lines+markers", name=f"{phase}: {column}"),
                row=1, col=col,
            )
        fig.update_xaxes(title_text="tree" if phase == "xgboost" else "epoch", row=1, col=col)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


RISK_COLOURS = {"HIGH": "#d62728", "MEDIUM": "#ff7f0e", "LOW": "#2ca02c"}
"""Colour of each risk level in every chart."""


def _layout(fig: go.Figure, height: int, **kwargs: Any) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10}, **kwargs)
    return fig


def fleet_rul(table: pd.DataFrame) -> go.Figure:
    """Predicted RUL with its interval per engine, sorted by RUL, one trace per risk level; true RUL as crosses.

    Engines are named by their id (``engine`` column) and dataset in the hover text, as plain text (:func:`plain`).
    """
    frame = table.sort_values("rul").reset_index(drop=True)
    frame["engine"] = (frame["engine"].astype(str) + " (" + frame["dataset"].astype(str) + ")").map(plain)
    fig = go.Figure()
    for level, colour in RISK_COLOURS.items():
        part = frame[frame["risk"] == level]
        if part.empty:
            continue
        fig.add_trace(go.Scatter(
            x=part.index, y=part["rul"], mode="markers", name=level, marker={"color": colour, "size": 6},
            error_y={"type": "data", "symmetric": False, "array": part["rul_high"] - part["rul"],
                         "arrayminus": part["rul"] - part["rul_low"], "color": colour, "thickness": 1, "width": 0},
            customdata=part[["engine", "rul_low", "rul_high", "p_fail_30"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>RUL %{y:.0f} [%{customdata[1]:.0f}, %{customdata[2]:.0f}]"
                          "<br>P(fail ≤ 30) %{customdata[3]:.0%}<extra></extra>",
        ))
    known = frame[frame["true_rul"].notna()]
    if not known.empty:
        fig.add_trace(go.Scatter(
            x=known.index, y=known["true_rul"], mode="markers", name="true RUL",
            marker={"symbol": "x", "color": "#444", "size": 5}, customdata=known[["engine"]].to_numpy(),
            hovertemplate="%{customdata[0]}<br>true RUL %{y:.0f}<extra></extra>",
        ))
    return _layout(fig, 380, xaxis_title="engines, sorted by predicted RUL", yaxis_title="RUL (cycles)",
                   legend={"orientation": "h", "y": 1.1}, title="Fleet: predicted RUL with interval, by risk")


def policy_costs(costs: pd.DataFrame) -> go.Figure:
    """Cost of each maintenance policy (one bar each)."""
    fig = go.Figure(go.Bar(
        x=costs["policy"], y=costs["cost"], text=[f"${c:,.0f}" for c in costs["cost"]], textposition="auto",
        marker_color=["#1f77b4" if p != "Do nothing" else "#7f7f7f" for p in costs["policy"]],
    ))
    return _layout(fig, 300, yaxis_title="cost ($)", title="Cost of acting on the risk levels vs doing nothing")


def axis_title(sensor: str) -> str:
    """A short axis title for a sensor: its mnemonic and unit, e.g. ``Ps30 (psia)``."""
    unit = sensor_table.unit_of(sensor)
    return f"{sensor_table.mnemonic(sensor)} ({unit})" if unit else sensor_table.mnemonic(sensor)


def sensor_trends(frame: pd.DataFrame, sensors: list[str], title: str, separate: bool = False,
                  y_title: str | None = None) -> go.Figure:
    """One line per sensor over cycles (`frame` has ``cycle`` and the sensor columns), named by its label.

    `separate`: one panel per sensor with its own y axis titled by mnemonic and unit (raw readings
    differ in scale by orders of magnitude); otherwise all lines share one axis (regime-normalised
    readings, `y_title`).
    """
    if not separate or len(sensors) < 2:
        fig = go.Figure()
        for sensor in sensors:
            fig.add_trace(go.Scatter(x=frame["cycle"], y=frame[sensor], mode="lines",
                                     name=sensor_table.label(sensor)))
        y_title = y_title or (axis_title(sensors[0]) if len(sensors) == 1 else None)
        return _layout(fig, 340, xaxis_title="cycle", yaxis_title=y_title, title=title,
                       legend={"orientation": "h", "y": -0.2})
    fig = make_subplots(rows=len(sensors), cols=1, shared_xaxes=True, vertical_spacing=0.03)
    for row, sensor in enumerate(sensors, start=1):
        fig.add_trace(go.Scatter(x=frame["cycle"], y=frame[sensor], mode="lines", name=sensor_table.label(sensor)),
                      row=row, col=1)
        fig.update_yaxes(title_text=axis_title(sensor), row=row, col=1)
    fig.update_xaxes(title_text="cycle", row=len(sensors), col=1)
    return _layout(fig, 80 + 110 * len(sensors), title=title, showlegend=False)


def rul_trajectory(trajectory: pd.DataFrame, true_rul: pd.Series | None = None,
                   outcomes: pd.DataFrame | None = None) -> go.Figure:
    """Predicted RUL over cycles with its interval band, the true RUL line where known, and a dotted
    vertical marker per recorded outcome (`outcomes` with ``cycle`` and ``event``)."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=trajectory["cycle"], y=trajectory["rul_high"], mode="lines", line={"width": 0},
                             showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=trajectory["cycle"], y=trajectory["rul_low"], mode="lines", line={"width": 0},
                             fill="tonexty", fillcolor="rgba(31,119,180,0.2)", name="interval"))
    fig.add_trace(go.Scatter(x=trajectory["cycle"], y=trajectory["rul"], mode="lines", name="predicted RUL",
                             line={"color": "#1f77b4"}))
    if true_rul is not None:
        fig.add_trace(go.Scatter(x=trajectory["cycle"], y=true_rul, mode="lines", name="true RUL (capped)",
                                 line={"color": "#444", "dash": "dash"}))
    _outcome_markers(fig, outcomes)
    return _layout(fig, 340, xaxis_title="cycle", yaxis_title="RUL (cycles)", title="RUL over the engine's life",
                   legend={"orientation": "h", "y": -0.2})


OUTCOME_COLOURS = {"failure": "#d62728", "removal": "#9467bd", "inspection": "#7f7f7f"}
"""Colour of each outcome event's marker."""


def _outcome_markers(fig: go.Figure, outcomes: pd.DataFrame | None) -> None:
    """A dotted vertical line at each outcome's cycle, labelled with its event."""
    if outcomes is None:
        return
    for row in outcomes.itertuples(index=False):
        fig.add_vline(x=float(row.cycle), line={"color": OUTCOME_COLOURS.get(row.event, "#444"), "dash": "dot"},
                      annotation_text=f"{row.event} (cycle {int(row.cycle)})", annotation_position="top left")


def prediction_history(predictions: pd.DataFrame, closed_cycle: int, cap: float,
                       outcomes: pd.DataFrame | None = None) -> go.Figure:
    """Stored predictions of a closed engine (``cycle``, ``model_version``, ``rul``, ``rul_low``, ``rul_high``)
    against the RUL that was realised, ``closed_cycle - cycle`` capped at `cap` (the models' target).

    One marker trace with intervals per model version, and the realised line.
    """
    fig = go.Figure()
    for version, part in predictions.groupby("model_version", sort=True):
        fig.add_trace(go.Scatter(
            x=part["cycle"], y=part["rul"], mode="markers", name=f"predicted, model v{version}",
            error_y={"type": "data", "symmetric": False, "array": part["rul_high"] - part["rul"],
                         "arrayminus": part["rul"] - part["rul_low"], "thickness": 1, "width": 0},
            hovertemplate="cycle %{x}: predicted %{y:.0f} cycles<extra></extra>",
        ))
    first = int(min(predictions["cycle"].min(), closed_cycle)) if not predictions.empty else closed_cycle
    cycles = np.arange(first, closed_cycle + 1)
    fig.add_trace(go.Scatter(x=cycles, y=np.minimum(closed_cycle - cycles, cap), mode="lines",
                             name=f"realised RUL (capped at {cap:.0f})", line={"color": "#444", "dash": "dash"}))
    _outcome_markers(fig, outcomes)
    return _layout(fig, 340, xaxis_title="cycle", yaxis_title="RUL (cycles)",
                   title="Stored predictions against the RUL that was realised", legend={"orientation": "h", "y": -0.2})


def _term_labels(breakdown: Breakdown) -> list[str]:
    """The labels of a breakdown's terms after the base: each listed input, the other inputs, the approximation."""
    return [*(sensor_table.feature_label(name) for name, _ in breakdown.factors),
            f"{breakdown.others} other inputs", APPROXIMATION]


def _term_values(breakdown: Breakdown) -> list[float]:
    return [*(value for _, value in breakdown.factors), breakdown.other_inputs, breakdown.approximation]


def explanation_waterfall(breakdown: Breakdown) -> go.Figure:
    """How the served RUL adds up, as a waterfall: the fleet-average prediction, each listed input's contribution,
    the other inputs together, the approximation, and the predicted RUL (the total: the served RUL).

    The bars are exact; their labels are whole cycles rounded to add up to the rounded RUL (``apportion``), the
    number the headline shows.
    """
    names = ["fleet-average prediction", *_term_labels(breakdown), "predicted RUL"]
    values = [breakdown.base, *_term_values(breakdown)]
    shown = apportion(values, round(breakdown.rul))
    fig = go.Figure(go.Waterfall(
        orientation="h", y=names, x=[*values, 0.0], measure=["absolute", *["relative"] * (len(values) - 1), "total"],
        increasing={"marker_color": "#2ca02c"}, decreasing={"marker_color": "#d62728"},
        totals={"marker_color": "#1f77b4"},
        text=[f"{shown[0]}", *(f"{v:+d}" for v in shown[1:]), f"{round(breakdown.rul)}"], textposition="outside",
        customdata=[*values, breakdown.rul],
        hovertemplate="%{y}: %{customdata:+.1f} cycles<extra></extra>",
    ))
    return _layout(fig, 120 + 26 * len(names), yaxis={"autorange": "reversed", "automargin": True},
                   xaxis_title="RUL (cycles)",
                   title=f"Ensemble: from the fleet average to the predicted RUL of {round(breakdown.rul)} cycles")


def tree_waterfall(tree: pd.Series, base: float, top: int = 12) -> go.Figure:
    """Waterfall of the XGBoost part: expected value, the `top` feature contributions, the rest, and the regressor's
    output before it is clipped to [0, cap] (the ensemble's approximation accounts for the clipping)."""
    order = tree.abs().sort_values(ascending=False).index
    shown = tree[order[:top]]
    rest = float(tree[order[top:]].sum())
    names = ["expected value", *map(sensor_table.feature_label, shown.index),
             f"{len(order) - len(shown)} other features", "XGBoost output"]
    values = [base, *shown.to_numpy(), rest, 0.0]
    measures = ["absolute", *["relative"] * (len(shown) + 1), "total"]
    fig = go.Figure(go.Waterfall(
        orientation="h", y=names, x=values, measure=measures,
        increasing={"marker_color": "#2ca02c"}, decreasing={"marker_color": "#d62728"},
        totals={"marker_color": "#1f77b4"}, text=[f"{v:+.1f}" for v in values[:-1]] + [""],
    ))
    return _layout(fig, 120 + 26 * len(names), yaxis={"autorange": "reversed", "automargin": True},
                   xaxis_title="cycles (before clipping)",
                   title="XGBoost: top feature contributions (TreeSHAP)")


def _short(name: str) -> str:
    """A short row label for an explanation input: the sensor's mnemonic, or ``age``."""
    return "age" if name == "age" else sensor_table.mnemonic(name)


ROW_PX = 22
"""Height of one row of the LSTM charts: their height follows the number of rows, never the labels' length."""
LSTM_MARGIN = {"l": 90, "r": 10, "t": 40, "b": 45}
"""Fixed margins of the LSTM charts (row labels are mnemonics, which fit in 90 px)."""


def lstm_totals(by_sensor: pd.DataFrame) -> go.Figure:
    """The LSTM part per input (cycles, summed over its window and channels) as horizontal bars, largest effect on
    top, rows labelled by mnemonic (the full label in the hover)."""
    shown = by_sensor.reindex(by_sensor["lstm"].abs().sort_values(ascending=False, kind="stable").index)
    labels = [_short(name) for name in shown["input"]]
    fig = go.Figure(go.Bar(
        y=labels, x=shown["lstm"], orientation="h",
        marker_color=["#d62728" if v < 0 else "#2ca02c" for v in shown["lstm"]],
        customdata=[sensor_table.feature_label(name) for name in shown["input"]],
        hovertemplate="%{customdata}: %{x:+.1f} cycles<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", automargin=False)
    fig.update_xaxes(automargin=False)
    fig.update_layout(height=LSTM_MARGIN["t"] + LSTM_MARGIN["b"] + ROW_PX * len(labels), margin=LSTM_MARGIN,
                      xaxis_title="effect on the LSTM's RUL (cycles)",
                      title="LSTM: effect of each input over its window")
    return fig


def lstm_heatmap(over_time: pd.DataFrame, cycles: list[int]) -> go.Figure:
    """LSTM attributions per input (rows, e.g. ``Explanation.lstm_over_time()``) and cycle (columns) as a heatmap:
    red lowers RUL, blue raises it. Rows are labelled by mnemonic; the height follows the number of rows."""
    z = over_time.to_numpy(dtype=float)
    limit = float(np.abs(z).max()) or 1.0
    labels = [_short(name) for name in over_time.index]
    fig = go.Figure(go.Heatmap(
        z=z, x=cycles, y=labels, zmin=-limit, zmax=limit, colorscale="RdBu", colorbar={"title": "cycles"},
        customdata=np.array([[sensor_table.feature_label(name)] * len(cycles) for name in over_time.index]),
        hovertemplate="%{customdata} at cycle %{x}: %{z:+.2f} cycles<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", automargin=False)
    fig.update_xaxes(automargin=False)
    fig.update_layout(height=LSTM_MARGIN["t"] + LSTM_MARGIN["b"] + ROW_PX * len(labels), margin=LSTM_MARGIN,
                      xaxis_title="cycle", title="LSTM: effect per input and cycle (expected gradients)")
    return fig


def sensor_attribution(breakdown: Breakdown, compare: Breakdown | None = None) -> go.Figure:
    """The terms of a breakdown (each listed input, the other inputs, the approximation) as horizontal bars, with the
    base and the RUL they add up to in the title; with `compare` (the baseline, listing the same inputs), its terms
    as a second set of bars."""
    labels = _term_labels(breakdown)[::-1]
    values = _term_values(breakdown)[::-1]
    fig = go.Figure()
    if compare is not None:
        fig.add_trace(go.Bar(y=labels, x=_term_values(compare)[::-1], orientation="h", name="baseline",
                             marker_color="#c7c7c7", hovertemplate="%{y}: %{x:+.1f} cycles<extra></extra>"))
    fig.add_trace(go.Bar(
        y=labels, x=values, orientation="h", name="what-if" if compare is not None else "explanation",
        marker_color=["#d62728" if v < 0 else "#2ca02c" for v in values],
        hovertemplate="%{y}: %{x:+.1f} cycles<extra></extra>",
    ))
    title = f"Effect of each input<br><sub>from the fleet average of {breakdown.base:.0f} cycles to "
    title += (f"{round(compare.rul)} (baseline) and {round(breakdown.rul)} cycles (what-if)" if compare is not None
              else f"{round(breakdown.rul)} cycles") + "</sub>"
    _layout(fig, 140 + 24 * len(labels), barmode="group", xaxis_title="effect on RUL (cycles)",
            yaxis={"automargin": True}, title=title, showlegend=compare is not None)
    return fig.update_layout(margin={"t": 60})  # room for the title's second line


def whatif_compare(baseline: dict[str, float], modified: dict[str, float]) -> go.Figure:
    """Baseline and what-if RUL with their intervals, side by side."""
    fig = go.Figure()
    for name, outcome, colour in (("baseline", baseline, "#7f7f7f"), ("what-if", modified, "#1f77b4")):
        fig.add_trace(go.Scatter(
            x=[outcome["rul"]], y=[name], mode="markers", name=name, marker={"color": colour, "size": 12},
            error_x={"type": "data", "symmetric": False, "array": [outcome["rul_high"] - outcome["rul"]],
                         "arrayminus": [outcome["rul"] - outcome["rul_low"]], "color": colour, "thickness": 3},
        ))
    return _layout(fig, 200, xaxis_title="RUL (cycles)", showlegend=False, title="Predicted RUL and interval")
