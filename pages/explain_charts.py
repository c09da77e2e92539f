"""Charts of the fleet explanations: mean |SHAP| per input (XGBoost, LSTM, blend), a dependence plot of one input
coloured by operating regime, and one engine's effects next to the fleet's."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.data import sensors as sensor_table

PARTS = (("combined", "blend (served RUL)", "#1f77b4"), ("xgb", "XGBoost", "#ff7f0e"), ("lstm", "LSTM", "#2ca02c"))
"""(column, legend name, colour) of the importance bars."""
ROW_PX = 26
MARGIN = {"l": 90, "r": 10, "t": 40, "b": 45}


def short(name: str) -> str:
    """The input's mnemonic (``age`` for the engine's age)."""
    return "age" if name == "age" else sensor_table.mnemonic(name)


def value_title(name: str, normalised: bool) -> str:
    """Axis title of an input's value: its mnemonic and unit, training σ when normalised, cycles for age."""
    if name == "age":
        return "engine age (cycles run)"
    if normalised:
        return f"{short(name)} (training σ from its regime mean, 5-cycle mean)"
    unit = sensor_table.unit_of(name)
    return f"{short(name)} last reading" + (f" ({unit})" if unit else "")


def importance(table: pd.DataFrame, top: int | None = None) -> go.Figure:
    """Mean |SHAP| per input (cycles) as grouped horizontal bars, one per member and the blend, the most
    important input on top."""
    shown = table.head(top) if top else table
    labels = [short(name) for name in shown["input"]]
    hover = [sensor_table.feature_label(name) for name in shown["input"]]
    fig = go.Figure()
    for column, name, colour in PARTS:
        fig.add_trace(go.Bar(y=labels, x=shown[column], orientation="h", name=name, marker_color=colour,
                             customdata=hover, hovertemplate=f"%{{customdata}}<br>{name}: %{{x:.2f}} cycles"
                                                             "<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=False)
    fig.update_layout(barmode="group", height=MARGIN["t"] + MARGIN["b"] + 3 * ROW_PX * len(labels) // 2 + 40,
                      margin=MARGIN, xaxis_title="mean |SHAP| over the sampled engines (cycles of RUL)",
                      title="What drives the model over the fleet",
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    return fig


def dependence(points: pd.DataFrame, name: str, normalised: bool = False) -> go.Figure:
    """One input's value against its blended SHAP effect, one point per sampled engine, coloured by the
    engine's operating regime (one trace per regime)."""
    part = points[points["input"] == name]
    column = "level" if normalised and name != "age" else "value"
    fig = go.Figure()
    for regime, group in part.groupby("regime", sort=True):
        fig.add_trace(go.Scatter(
            x=group[column], y=group["combined"], mode="markers", name=f"regime {regime}",
            marker={"size": 6, "opacity": 0.75}, customdata=group[["unit", "xgb", "lstm"]].to_numpy(),
            hovertemplate="unit %{customdata[0]}<br>value %{x:.4g}<br>effect %{y:+.1f} cycles (XGBoost "
                          "%{customdata[1]:+.1f}, LSTM %{customdata[2]:+.1f})<extra></extra>",
        ))
    fig.add_hline(y=0, line={"color": "#888", "width": 1})
    fig.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      title=f"Dependence: {short(name)} against its effect on RUL",
                      xaxis_title=value_title(name, normalised), yaxis_title="SHAP effect on the served RUL (cycles)",
                      legend={"title": {"text": "operating regime"}})
    return fig


def engine_vs_fleet(by_sensor: pd.DataFrame, table: pd.DataFrame, top: int) -> go.Figure:
    """This engine's |blended effect| next to the fleet's mean |SHAP| for the fleet's `top` inputs."""
    shown = table.head(top)
    own = by_sensor.set_index("input")["combined"].abs().reindex(shown["input"]).fillna(0.0)
    labels = [short(name) for name in shown["input"]]
    fig = go.Figure([
        go.Bar(y=labels, x=own.to_numpy(), orientation="h", name="this engine", marker_color="#9467bd",
               hovertemplate="this engine: %{x:.2f} cycles<extra></extra>"),
        go.Bar(y=labels, x=shown["combined"], orientation="h", name="fleet mean", marker_color="#1f77b4",
               hovertemplate="fleet mean: %{x:.2f} cycles<extra></extra>"),
    ])
    fig.update_yaxes(autorange="reversed", automargin=False)
    fig.update_layout(barmode="group", height=MARGIN["t"] + MARGIN["b"] + ROW_PX * len(labels) + 40, margin=MARGIN,
                      xaxis_title="|effect on RUL| (cycles)", title="This engine against the fleet",
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"})
    return fig
