"""Engine: sensor trends, the RUL trajectory, the current prediction, its SHAP explanation and what-if sliders."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config
from core.data.cmapss import RUL_CAP, SENSORS
from core.errors import UserError
from core.serving import whatif
from models.ensemble import Ensemble
from models.explain import Explainer
from pages import charts, ui

TOP_SENSORS = 4  # the most influential sensors get a what-if slider and are plotted by default

ui.init_session()  # idempotent; keeps the page whole even when run outside app.py
st.title("Engine")

version, ensemble, listing = ui.model_and_data()
uri = config.paths().mlflow_uri
names = listing["name"].tolist()


def _pick_dataset() -> None:
    st.session_state["engine"] = (st.session_state["_engine_dataset"], None)


def _pick_unit() -> None:
    st.session_state["engine"] = (st.session_state["_engine_dataset"], st.session_state["_engine_unit"])


selected = st.session_state["engine"] or (None, None)
dataset = selected[0] if selected[0] in names else next(iter(listing.loc[listing["split"] == "test", "name"]),
                                                          names[0])
fingerprint = ui.data_fingerprint([dataset])
try:
    readings = ui.dataset_readings(dataset, fingerprint)
except UserError as err:
    ui.show_error(err)
    st.stop()
units = sorted(int(u) for u in readings["unit"].unique())
if not units:
    st.warning(f"{dataset} holds no engines.")
    st.stop()
unit = selected[1] if selected[1] in units else units[0]
st.session_state["engine"] = (dataset, unit)
st.session_state["_engine_dataset"], st.session_state["_engine_unit"] = dataset, unit

pick = st.columns([2, 1, 3])
pick[0].selectbox("Dataset", names, key="_engine_dataset", on_change=_pick_dataset)
pick[1].selectbox("Unit", units, key="_engine_unit", on_change=_pick_unit)
pick[2].page_link("pages/fleet.py", label="Back to the fleet", icon=":material/arrow_back:")

try:
    engine = whatif.engine_rows(readings, dataset, unit)
    trajectory = ui.engine_trajectory(dataset, unit, version, uri, fingerprint)
    truth = ui.engine_truth(dataset, fingerprint)
    with st.spinner("Explaining the prediction…"):
        explainer = ui.explainer(version, uri)
        baseline = whatif.predict_one(ensemble, explainer, engine)
except UserError as err:
    ui.show_error(err)
    st.stop()

split = str(listing.set_index("name").at[dataset, "split"])
end_rul = truth.get(unit, 0.0 if split == "train" else None)
m = st.columns(5)
m[0].metric("Last cycle", baseline.cycle)
m[1].metric("Predicted RUL", f"{baseline.rul:.0f} cycles",
            help="Blend of XGBoost and the LSTM, capped at 125 cycles.")
m[2].metric("Interval", f"{baseline.rul_low:.0f} – {baseline.rul_high:.0f}",
            help=f"Split-conformal interval, {ensemble.conformal.nominal:.0%} nominal coverage.")
m[3].metric("P(fail within 30 cycles)", f"{baseline.p_fail_30:.0%}")
m[4].metric("Risk", baseline.risk)
if end_rul is not None:
    st.caption(f"True RUL after the last cycle: {end_rul:.0f} cycles"
               + (" (a training engine runs to failure)." if split == "train" and unit not in truth else "."))

explanation = baseline.explanation
trends_tab, why_tab, whatif_tab = st.tabs(["Trends", "Why this prediction", "What if"])

with trends_tab:
    left, right = st.columns([3, 1])
    scale = right.radio("Scale", ["regime-normalised", "raw"], key="engine_scale",
                        help="Regime-normalised: each reading minus its operating regime's training mean, "
                             "in training standard deviations (what the models see).")
    options = SENSORS if scale == "raw" else ensemble.pipeline.sensors
    chosen = right.multiselect("Sensors", options, default=explanation.top_sensors(TOP_SENSORS),
                               key=f"engine_sensors_{scale}")
    frame = engine if scale == "raw" else whatif.normalised(ensemble, engine)
    title = "Sensor readings" if scale == "raw" else "Regime-normalised sensors (training σ)"
    left.plotly_chart(charts.sensor_trends(frame, chosen, title, separate=scale == "raw"), key="engine_trends")
    true_line = None
    if end_rul is not None:
        true_line = (end_rul + trajectory["cycle"].max() - trajectory["cycle"]).clip(upper=RUL_CAP)
    st.plotly_chart(charts.rul_trajectory(trajectory, true_line), key="engine_trajectory")

with why_tab:
    w = explanation.weight_xgb
    st.markdown("\n".join(f"- {line}" for line in explanation.sentences()))
    st.plotly_chart(charts.sensor_attribution(explanation.by_sensor), key="why_sensors")
    st.caption(
        f"Each input's effect combines the two models by the ensemble's RUL weights (XGBoost {w:.2f}, "
        f"LSTM {1 - w:.2f}). σ is the sensor's spread within its operating regime in the training data."
    )
    tree_col, lstm_col = st.columns(2)
    tree_col.plotly_chart(charts.tree_waterfall(explanation.tree, explanation.tree_base), key="why_tree")
    window_cycles = list(range(baseline.cycle - len(explanation.lstm) + 1, baseline.cycle + 1))
    lstm_col.plotly_chart(charts.lstm_heatmap(explanation.lstm, explanation.lstm_channels, window_cycles),
                          key="why_lstm")
    if w >= 1.0:
        lstm_col.caption("The ensemble gives the LSTM no weight in the RUL blend, so its part does not move "
                         "the prediction; it is shown for reference.")


@st.fragment
def what_if_panel(ensemble: Ensemble, explainer: Explainer, engine: pd.DataFrame, baseline: whatif.Outcome,
                  prefix: str) -> None:
    """Sliders shifting the recent readings of the most influential sensors, and the updated prediction."""
    ranges = whatif.slider_ranges(ensemble)
    sensors = [s for s in baseline.explanation.top_sensors(TOP_SENSORS) if s in ranges]
    keys = {s: f"{prefix}_{s}" for s in sensors}

    def reset() -> None:
        for key in keys.values():
            st.session_state[key] = 0.0

    top = st.columns([3, 1], vertical_alignment="bottom")
    last_n = top[0].slider("Shift the last N cycles", 1, max(len(engine), 2), min(10, len(engine)), key=f"{prefix}_n")
    top[1].button("Reset", on_click=reset, key=f"{prefix}_reset", icon=":material/restart_alt:")
    columns = st.columns(len(sensors))
    shifts = {}
    for column, sensor in zip(columns, sensors):
        r = ranges[sensor]
        shifts[sensor] = column.slider(
            f"{sensor} shift", r.low, r.high, 0.0, r.step, key=keys[sensor],
            help=f"Added to {sensor} over the last N cycles. Range ±3 training σ (σ = {r.sigma:.4g}).",
        )
    try:
        result = whatif.what_if(ensemble, explainer, engine, shifts, last_n, baseline=baseline)
    except UserError as err:
        ui.show_error(err)
        return
    before, after = result.baseline, result.modified
    moved = bool(result.shifts)
    p_change = (after.p_fail_30 - before.p_fail_30) * 100
    cols = st.columns(4)
    cols[0].metric("Predicted RUL (what-if)", f"{after.rul:.0f} cycles",
                   delta=f"{result.rul_change:+.1f} cycles" if moved else None)
    cols[1].metric("Interval (what-if)", f"{after.rul_low:.0f} – {after.rul_high:.0f}")
    cols[2].metric("P(fail within 30 cycles) (what-if)", f"{after.p_fail_30:.0%}",
                   delta=f"{p_change:+.0f} points" if moved and abs(p_change) >= 0.5 else None,
                   delta_color="inverse")
    cols[3].metric("Risk (what-if)", after.risk)
    st.caption(f"Baseline (unmodified readings): RUL {before.rul:.0f} cycles, interval {before.rul_low:.0f} – "
               f"{before.rul_high:.0f}, P(fail within 30 cycles) {before.p_fail_30:.0%}, risk {before.risk}."
               + ("" if moved else " Move a slider to see a what-if."))
    chart_col, shap_col = st.columns(2)
    chart_col.plotly_chart(charts.whatif_compare(before.to_dict(), after.to_dict()), key=f"{prefix}_compare")
    shap_col.plotly_chart(charts.sensor_attribution(after.explanation.by_sensor, compare=before.explanation.by_sensor),
                          key=f"{prefix}_shap")
    st.markdown("\n".join(f"- {line}" for line in after.explanation.sentences()))


with whatif_tab:
    st.caption("Shift the recent readings of the sensors that move this prediction most and see the prediction, "
               "interval, risk and explanation change, next to the unmodified baseline.")
    what_if_panel(ensemble, explainer, engine, baseline, f"whatif_{dataset}_{unit}")
