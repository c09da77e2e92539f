"""Plotly figures of the Drift page (no streamlit here, so they are unit-testable).

- :func:`score_bars`: ranked per-feature drift scores with the warn and alert thresholds drawn;
- :func:`distributions`: one feature's reference and current distributions overlaid;
- :func:`timeline`: the production simulation, step by step.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LEVEL_COLOURS = {"none": "#4c9a6a", "warn": "#e0a030", "alert": "#d0453a"}
UNINFORMATIVE_COLOUR = "#b9bec6"
REFERENCE_COLOUR = "#3c6fb0"
CURRENT_COLOUR = "#e07b39"
VERSION_COLOURS = ("#eef3fb", "#fbf1e6", "#eef8f0", "#f6eefa", "#fdf8e3", "#eaf6f8")


def score_bars(table: pd.DataFrame, method: str, warn: float, alert: float) -> go.Figure:
    """Horizontal bars of ``table[method]`` per feature, highest first, coloured by level.

    Near-constant features (``informative`` False) are grey and ranked below the others: they are
    shown but not counted, labelled so, and the axis is scaled to the informative features (a longer
    grey bar is cut, its value written on it). Each bar carries its feature name as ``customdata`` so a click
    can select it.
    """
    ranked = table.sort_values(["informative", method], ascending=True)
    colours = [
        LEVEL_COLOURS.get(str(lvl), UNINFORMATIVE_COLOUR) if informative else UNINFORMATIVE_COLOUR
        for lvl, informative in zip(ranked["level"], ranked["informative"], strict=True)
    ]
    notes = ["" if informative else " (near-constant in reference, not counted)" for informative in ranked["informative"]]
    labels = [f"{v:.3f}" if informative else f"{v:.3f} · near-constant, not counted"
              for v, informative in zip(ranked[method], ranked["informative"], strict=True)]
    fig = go.Figure(
        go.Bar(
            x=ranked[method], y=ranked["feature"], orientation="h", marker_color=colours,
            customdata=ranked["feature"], text=labels, textposition="auto",
            hovertemplate=[f"%{{y}}: {method} %{{x:.3f}}{n}<extra></extra>" for n in notes], name=method,
        )
    )
    informative = ranked.loc[ranked["informative"], method]
    top = max(float(informative.max()) if len(informative) else 0.0, alert * 1.6) * 1.2
    for value, label, colour, where in ((warn, "warn", LEVEL_COLOURS["warn"], "bottom left"),
                                        (alert, "alert", LEVEL_COLOURS["alert"], "top right")):
        fig.add_vline(x=value, line_dash="dash", line_color=colour,
                      annotation_text=f"{label} {value:g}", annotation_position=where)
    fig.update_layout(
        height=max(320, 22 * len(ranked) + 90), margin={"l": 10, "r": 10, "t": 40, "b": 10},
        xaxis_title=f"{method.upper()} (reference vs current)", xaxis_range=[0, top], showlegend=False,
        clickmode="event+select",
    )
    return fig


def _bin_edges(reference: np.ndarray, current: np.ndarray, bins: int) -> np.ndarray:
    both = np.concatenate([reference, current])
    low, high = float(np.min(both)), float(np.max(both))
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, bins + 1)


def distributions(
    reference: pd.Series | np.ndarray, current: pd.Series | np.ndarray, feature: str,
    reference_label: str, current_label: str, bins: int = 40, title: str | None = None,
) -> go.Figure:
    """Overlaid density histograms of one feature (same bins for both sides), titled ``title`` or the feature.

    The labels (which name datasets) show literally in the legend: plotly reads a subset of HTML there, so ``<``,
    ``>`` and ``&`` are written as entities.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    edges = _bin_edges(ref, cur, bins)
    fig = go.Figure()
    for values, label, colour in ((ref, reference_label, REFERENCE_COLOUR), (cur, current_label, CURRENT_COLOUR)):
        density, _ = np.histogram(values, bins=edges, density=True)
        fig.add_trace(
            go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=density, width=np.diff(edges),
                   name=f"{html.escape(label, quote=False)} ({values.size:,} rows)", marker_color=colour, opacity=0.55)
        )
    fig.update_layout(
        barmode="overlay", height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=title or feature,
        xaxis_title=feature, yaxis_title="density", legend={"orientation": "h", "y": -0.25},
    )
    return fig


def _version_spans(steps: list[dict[str, Any]]) -> list[tuple[int, int, int]]:
    """(version, first step, last step) of each run of consecutive steps served by one version."""
    spans: list[tuple[int, int, int]] = []
    for step in steps:
        version, index = int(step["model_version"]), int(step["step"])
        if spans and spans[-1][0] == version:
            spans[-1] = (version, spans[-1][1], index)
        else:
            spans.append((version, index, index))
    return spans


def timeline(data: dict[str, Any]) -> go.Figure:
    """Drift share, prediction PSI and live RMSE per step, thresholds, crossings, retrains, versions.

    Background bands show which model version served each step; triangles mark threshold
    crossings; dotted vertical lines mark retrains (labelled with the new version and whether the
    gate promoted it); arrows mark shadow comparisons of a candidate the gate kept out.
    """
    steps = data.get("steps", [])
    limits = data.get("thresholds", {})
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("Drift share (fraction of sensors drifted)",
                                        "Prediction PSI (predicted RUL vs training data)",
                                        "Live RMSE (cycles, truth from run-to-failure)"))
    fig.update_layout(height=640, margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.14},
                      hovermode="x unified")
    total = int(data.get("steps_total") or len(steps) or 1)
    fig.update_xaxes(range=[0.5, total + 0.5], row=3, col=1, title_text="step")
    if not steps:
        return fig
    frame = pd.DataFrame(steps)
    x = frame["step"]
    fig.update_xaxes(tickvals=list(x), ticktext=[f"{i}<br>{q}" for i, q in zip(x, frame["quarter"], strict=True)],
                     row=3, col=1)
    labels = [f"{q} · v{v}" for q, v in zip(frame["quarter"], frame["model_version"], strict=True)]
    for i, (version, first, last) in enumerate(_version_spans(steps)):
        for row in (1, 2, 3):
            fig.add_vrect(x0=first - 0.5, x1=last + 0.5, fillcolor=VERSION_COLOURS[i % len(VERSION_COLOURS)],
                          line_width=0, layer="below", row=row, col=1)
        fig.add_annotation(x=(first + last) / 2, y=1.0, yref="y domain", text=f"v{version}", showarrow=False,
                           font={"size": 12, "color": "#555"}, row=1, col=1)
    series = (("drift_share", "drift share", 1, limits.get("share")),
              ("prediction_psi", "prediction PSI", 2, limits.get("prediction_psi")),
              ("rmse", "live RMSE", 3, None))
    for column, name, row, limit in series:
        values = pd.to_numeric(frame[column], errors="coerce")
        fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=name, text=labels,
                                 hovertemplate=f"{name} %{{y:.3f}} (%{{text}})<extra></extra>"), row=row, col=1)
        if limit is not None:
            fig.add_hline(y=limit, line_dash="dash", line_color=LEVEL_COLOURS["alert"], row=row, col=1,
                          annotation_text=f"threshold {limit:g}", annotation_position="top left")
            crossed = frame["crossed"].apply(lambda c, metric=column: metric in c)
            if crossed.any():
                fig.add_trace(go.Scatter(x=x[crossed], y=values[crossed], mode="markers", name=f"{name} crossed",
                                         marker={"symbol": "triangle-up", "size": 14, "color": LEVEL_COLOURS["alert"]},
                                         hovertemplate=f"{name} crossed %{{y:.3f}}<extra></extra>"), row=row, col=1)
    for step in steps:
        retrain = step.get("retrain")
        if not retrain:
            continue
        if retrain.get("version") is None:
            label = "retrain failed"
        else:
            label = f"retrain → v{retrain['version']} {'promoted' if retrain.get('promoted') else 'kept out'}"
        for row in (1, 2, 3):
            fig.add_vline(x=step["step"] + 0.5, line_dash="dot", line_color="#444", row=row, col=1)
        fig.add_annotation(x=step["step"] + 0.5, y=0.85, yref="y domain", text=label, showarrow=False,
                           xanchor="left", font={"size": 11}, bgcolor="rgba(255,255,255,0.8)", row=1, col=1)
    for step in steps:
        shadow = step.get("shadow")
        if not shadow:
            continue
        verdict = "promoted" if shadow.get("promoted") else "stays out"
        fig.add_annotation(x=step["step"], y=shadow["rmse"], showarrow=True, arrowhead=2, ax=0, ay=-30,
                           text=f"shadow v{shadow['version']}: RMSE {shadow['rmse']:.1f}, {verdict}",
                           font={"size": 11}, bgcolor="rgba(255,255,255,0.8)", row=3, col=1)
    return fig
