"""Plotly figures of the Plan page (no streamlit here): the calendar, expected removals, costs, one engine's RUL.

Plotly reads a few HTML tags in titles, so an engine's label is escaped there.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

PLAN_COLOUR = "#1f77b4"
LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0.0}
BASELINE_COLOUR = "#7f7f7f"


def _layout(fig: go.Figure, height: int, **kwargs: object) -> go.Figure:
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 70, "b": 10}, **kwargs)
    return fig


def _week_labels(weeks: pd.DataFrame) -> list[str]:
    return [f"W{w} · {s[5:]}" for w, s in zip(weeks["week"], weeks["week_start"], strict=True)]


def calendar(weeks: pd.DataFrame) -> go.Figure:
    """Engines planned per week (bars) against the week's slots (line)."""
    labels = _week_labels(weeks)
    fig = go.Figure()
    planned = weeks["planned"].tolist()
    fig.add_trace(go.Bar(x=labels, y=planned, name="engines planned", marker_color=PLAN_COLOUR, text=planned,
                         textposition="auto",
                         hovertemplate="%{x}: %{y} engine(s) planned<extra></extra>"))
    fig.add_trace(go.Scatter(x=labels, y=weeks["slots"].tolist(), name="slots", mode="lines+markers",
                             line={"color": "#d62728", "dash": "dash", "shape": "hvh"},
                             hovertemplate="%{x}: %{y} slot(s)<extra></extra>"))
    return _layout(fig, 300, title="Calendar: engines planned per week and the slots", yaxis_title="engines",
                   legend=LEGEND)


def removals(weeks: pd.DataFrame) -> go.Figure:
    """Expected removals per week (planned ones that do not fail first, and failures) with the 90 % band."""
    labels = _week_labels(weeks)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=labels + labels[::-1],
                             y=list(weeks["removals_high"]) + list(weeks["removals_low"])[::-1], fill="toself",
                             mode="lines", fillcolor="rgba(31,119,180,0.2)", line={"width": 0}, name="90 % band",
                             hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=labels, y=weeks["expected_removals"], mode="lines+markers", name="expected removals",
                             line={"color": PLAN_COLOUR},
                             hovertemplate="%{x}: %{y:.1f} expected<extra></extra>"))
    fig.add_trace(go.Bar(x=labels, y=weeks["expected_failures"], name="of which failures", marker_color="#d62728",
                         opacity=0.6, hovertemplate="%{x}: %{y:.1f} expected failures<extra></extra>"))
    return _layout(fig, 300, title="What the shop should expect: removals per week", yaxis_title="engines",
                   legend=LEGEND)


def policy_costs(policies: pd.DataFrame) -> go.Figure:
    """Expected cost of the plan and of each baseline (one bar each, the plan first)."""
    colours = [PLAN_COLOUR if p == "Plan" else BASELINE_COLOUR for p in policies["policy"]]
    fig = go.Figure(go.Bar(x=policies["policy"], y=policies["expected_cost"], marker_color=colours,
                           text=[f"${c:,.0f}" for c in policies["expected_cost"]], textposition="auto"))
    return _layout(fig, 320, title="Expected cost: the plan against the baselines", yaxis_title="expected cost ($)")


def engine_distribution(cycles: np.ndarray, fail: np.ndarray, slot_cycles: float | None, label: str,
                        cap: float) -> go.Figure:
    """One engine's P(fail within c cycles) over c, with its slot (a vertical line) and the model's RUL cap."""
    fig = go.Figure(go.Scatter(x=cycles, y=fail, mode="lines", name="P(fail within c cycles)",
                               line={"color": PLAN_COLOUR},
                               hovertemplate="%{x:.0f} cycles: %{y:.1%}<extra></extra>"))
    if slot_cycles is not None:
        fig.add_vline(x=slot_cycles, line={"color": "#2ca02c", "dash": "dash"}, annotation_text="its slot")
    fig.add_vline(x=cap, line={"color": BASELINE_COLOUR, "dash": "dot"}, annotation_text="model's horizon")
    return _layout(fig, 280, title=f"RUL distribution of {html.escape(label)}", xaxis_title="cycles from now",
                   yaxis={"title": "P(fail)", "tickformat": ".0%", "range": [0, 1.02]})
