"""Charts of the Models page: a training's loss curves, one panel per model (their losses differ), and two versions' loss
curves overlaid."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.operations.job_progress import xgb_segments

XGB_PANELS = (("XGBoost RUL regressor", "tree", "RMSE"),
              ("XGBoost failure classifier", "tree", "log-loss"))
SERIES_NAMES = {"train_loss": "training", "val_loss": "validation"}


def loss_panels(losses: list[dict[str, Any]]) -> list[tuple[str, str, str, pd.DataFrame]]:
    """(title, x label, y label, entries) per model that reported losses: regressor, classifier, LSTM."""
    panels = []
    for (title, x_label, y_label), segment in zip(XGB_PANELS, xgb_segments(losses), strict=False):
        panels.append((title, x_label, y_label, pd.DataFrame(segment)))
    lstm = [entry for entry in losses if entry.get("phase") == "lstm"]
    if lstm:
        panels.append(("LSTM (RUL and failure heads)", "epoch", "loss", pd.DataFrame(lstm)))
    return panels


def loss_curves(losses: list[dict[str, Any]]) -> go.Figure:
    """Training and validation loss per step, one panel per model with its own axes."""
    panels = loss_panels(losses)
    fig = make_subplots(rows=1, cols=max(len(panels), 1), subplot_titles=[p[0] for p in panels] or None)
    for col, (title, x_label, y_label, frame) in enumerate(panels, start=1):
        for column in [c for c in frame.columns if c.endswith("loss") and frame[c].notna().any()]:
            fig.add_trace(
                go.Scatter(x=frame["step"], y=frame[column], mode="lines+markers",
                           name=f"{title}: {SERIES_NAMES.get(column, column)}", legendgroup=title),
                row=1, col=col,
            )
        fig.update_xaxes(title_text=x_label, row=1, col=col)
        fig.update_yaxes(title_text=y_label, row=1, col=col)
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig


def _family(key: str) -> tuple[str, str]:
    """(model, series) of a logged loss key: ``lstm_val_loss`` -> (lstm, validation)."""
    for ending, series in (("_train_loss", "training"), ("_val_loss", "validation")):
        if key.endswith(ending):
            return key.removesuffix(ending), series
    return key, key


def compared_losses(losses: dict[str, dict[str, list[list[float]]]], a: int, b: int) -> go.Figure:
    """Two versions' loss curves overlaid (:func:`core.operations.compare.compare`'s ``losses``): one panel per model
    (the key without its ``_train_loss``/``_val_loss`` ending), version A solid, version B dashed."""
    families = sorted({_family(key)[0] for side in losses.values() for key in side})
    fig = make_subplots(rows=1, cols=max(len(families), 1), subplot_titles=[f.replace('_', ' ') for f in families] or None)
    for side, version, dash in (("a", a, "solid"), ("b", b, "dash")):
        for key, points in losses.get(side, {}).items():
            if not points:
                continue
            family, series = _family(key)
            fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines+markers",
                                     line=dict(dash=dash), name=f"v{version} {family.replace('_', ' ')}: {series}"),
                          row=1, col=families.index(family) + 1)
    for col in range(1, len(families) + 1):
        fig.update_xaxes(title_text="step", row=1, col=col)
        fig.update_yaxes(title_text="loss", row=1, col=col)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.3))
    return fig
