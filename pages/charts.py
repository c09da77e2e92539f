"""Plotly figure builders for the pages (no streamlit here, so they are unit-testable)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go


def loss_curves(losses: list[dict[str, Any]]) -> go.Figure:
    """Training and validation loss per step, one line per (phase, loss) pair."""
    fig = go.Figure()
    frame = pd.DataFrame(losses)
    if not frame.empty:
        for phase, part in frame.groupby("phase", sort=False):
            for column in [c for c in part.columns if c.endswith("loss") and part[c].notna().any()]:
                fig.add_trace(
                    go.Scatter(x=part["step"], y=part[column], mode="lines+markers", name=f"{phase}: {column}")
                )
    fig.update_layout(
        height=300, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="epoch / step", yaxis_title="loss",
        legend=dict(orientation="h", y=-0.25),
    )
    return fig
