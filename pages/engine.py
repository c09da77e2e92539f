"""Engine: one engine by its id: the current prediction, sensor trends, outcomes (record and timeline), stored
predictions against the realised RUL once it closed, the SHAP explanation next to the fleet's, and what-if sliders
for any sensor.

The address ``?dataset=NAME&engine=ID`` opens that engine, so a link to it can be shared.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config
from core.commands import outcome as outcome_command
from core.data import fleet_ops, queries, sensors, store
from core.data.cmapss import RUL_CAP, SENSORS
from core.errors import UserError
from core.serving import whatif
from models.ensemble import Ensemble
from models.explain import Explainer
from pages import access, charts, explain_charts, explain_view, ui

TOP_SENSORS = 4  # the most influential sensors get a what-if slider by default and are plotted by default
TOP_CHART = 10  # inputs listed in the explanation charts (the rest add up as "other inputs")
IN_SERVICE = ("fleet", "evaluation")
LISTED_ENGINES = 1_000  # a dataset with more engines has its engine typed, not picked from a list that long


@st.cache_data(show_spinner=False, max_entries=64)
def engine_list(name: str, fingerprint: tuple) -> pd.DataFrame:
    """The engines of a dataset (:func:`core.data.queries.engines`), cached by the data fingerprint."""
    with store.connect(read_only=True) as con:
        return queries.engines(con, name)


@st.cache_data(show_spinner=False, max_entries=64)
def engine_readings(name: str, unit: int, fingerprint: tuple) -> pd.DataFrame:
    """One engine's readings with a ``dataset`` column, in cycle order: only its rows are read, however large
    the dataset (the readings are stored by dataset, unit and cycle)."""
    with store.connect(read_only=True) as con:
        return queries.engine_readings(con, name, unit).assign(dataset=name)


@st.cache_data(show_spinner=False, max_entries=64)
def engine_trajectory(name: str, unit: int, version: int, uri: str, fingerprint: tuple) -> pd.DataFrame:
    """Predictions at every cycle of one engine (the RUL trajectory), cached per engine and model version."""
    engine = whatif.engine_rows(engine_readings(name, unit, fingerprint), name, unit)
    return whatif.serving_setup(ui.load_model(version, uri)).predict_cycles(engine)


def show(dataset: str, engine: str | None) -> None:
    """Make (`dataset`, `engine`) the engine shown, in the session and in the page's shareable address."""
    st.session_state["engine"] = (dataset, engine)
    st.query_params.from_dict({"dataset": dataset, **({"engine": engine} if engine else {})})


def _pick_dataset() -> None:
    show(st.session_state["_engine_dataset"], None)


def _pick_engine() -> None:
    show(st.session_state["_engine_dataset"], st.session_state["_engine_id"])


def _type_engine() -> None:
    show(st.session_state["_engine_dataset"], st.session_state["_engine_typed"].strip() or None)


ui.init_session()  # idempotent; keeps the page whole even when run outside app.py
st.title("Engine")

version, ensemble, listing = ui.model_and_data()
uri = config.paths().mlflow_uri
names = listing["name"].tolist()
roles = listing.set_index("name")["role"]

asked = st.query_params.get("dataset"), st.query_params.get("engine")
selected = asked if asked[0] is not None else (st.session_state["engine"] or (None, None))
if selected[0] is not None and selected[0] not in names:
    st.warning(f"No dataset named '{ui.text(selected[0])}' is loaded; showing another one.")
default = next((n for n in names if roles[n] in IN_SERVICE), names[0])
dataset = selected[0] if selected[0] in names else default
fingerprint = ui.data_fingerprint([dataset])
try:
    engines = engine_list(dataset, fingerprint)
except UserError as err:
    ui.show_error(err)
    st.stop()
if engines.empty:
    st.warning(f"{ui.text(dataset)} holds no engines.")
    st.stop()
ids = engines["engine"].astype(str).tolist()
wanted = None if selected[1] is None else str(selected[1])
if wanted is not None and wanted not in ids:
    st.warning(f"Dataset '{ui.text(dataset)}' has no engine '{ui.text(wanted)}'; showing engine {ui.text(ids[0])}.")
engine_id = wanted if wanted in ids else ids[0]
info = engines.set_index(engines["engine"].astype(str)).loc[engine_id]
unit = int(info["unit"])
role = str(roles[dataset])
closed = pd.notna(info["closed_event"])
show(dataset, engine_id)
st.session_state["_engine_dataset"], st.session_state["_engine_id"] = dataset, engine_id
st.session_state["_engine_typed"] = engine_id


closed_events = dict(zip(ids, engines["closed_event"]))


def _engine_option(engine: str) -> str:
    event = closed_events[engine]
    return engine if pd.isna(event) else f"{engine} (closed: {event})"


pick = st.columns([2, 2, 2])
pick[0].selectbox("Dataset", names, key="_engine_dataset", on_change=_pick_dataset,
                  format_func=lambda n: f"{n} ({roles[n]})")
if len(ids) > LISTED_ENGINES:
    pick[1].text_input("Engine id", key="_engine_typed", on_change=_type_engine,
                       help=f"{len(ids):,} engines: type an id (e.g. {ui.text(ids[0])}); the Fleet page lists them "
                            "by risk.")
else:
    pick[1].selectbox("Engine", ids, key="_engine_id", on_change=_pick_engine, format_func=_engine_option)
pick[2].page_link("pages/fleet.py", label="Back to the fleet", icon=":material/arrow_back:")

try:
    engine = whatif.engine_rows(engine_readings(dataset, unit, fingerprint), dataset, unit)
    trajectory = engine_trajectory(dataset, unit, version, uri, fingerprint)
    truth = ui.engine_truth(dataset, fingerprint)
    history = fleet_ops.engine_history(dataset, engine_id)
    with st.spinner("Explaining the prediction…"):
        explainer = ui.explainer(version, uri)
        baseline = whatif.predict_one(ensemble, explainer, engine)
except UserError as err:
    ui.show_error(err)
    st.stop()

outcomes = pd.DataFrame(history["outcomes"], columns=["created_at", "cycle", "event", "note", "model_version"])
if closed:
    end_rul = float(info["closed_cycle"]) - baseline.cycle
    truth_note = (f"Closed by a {info['closed_event']} at cycle {int(info['closed_cycle'])}: true RUL after the "
                  f"last cycle {end_rul:.0f} cycles.")
elif role == "history":
    end_rul = truth.get(unit, 0.0)
    truth_note = f"True RUL after the last cycle: {end_rul:.0f} cycles (a history engine runs to failure or removal)."
elif role == "evaluation" and unit in truth:
    end_rul = truth[unit]
    truth_note = f"True RUL after the last cycle: {end_rul:.0f} cycles (from the evaluation data's RUL file)."
else:
    end_rul = None
    truth_note = "In service: its true RUL is not known until a failure or removal is recorded."

m = st.columns(5)
m[0].metric("Last cycle", baseline.cycle)
m[1].metric("Predicted RUL", f"{baseline.rul:.0f} cycles",
            help=f"Blend of XGBoost and the LSTM, capped at {RUL_CAP} cycles.")
m[2].metric("Interval", f"{baseline.rul_low:.0f} – {baseline.rul_high:.0f}",
            help=f"Split-conformal interval, {ensemble.conformal.nominal:.0%} nominal coverage: residual "
                 f"quantiles at {ensemble.conformal.level:.1%}, the level that "
                 "covered validation engines left out of the fit at the nominal rate.")
m[3].metric("P(fail within 30 cycles)", f"{baseline.p_fail_30:.0%}")
m[4].metric("Risk", baseline.risk)
st.caption(f"Engine {ui.text(engine_id)} of {ui.text(dataset)} ({role}). {truth_note}")
if baseline.ood:
    st.warning(f"**Out of the model's experience.** {baseline.ood_reason} Its prediction is an extrapolation: "
               "trust it less, and consider retraining on data that covers these conditions.",
               icon=":material/explore_off:")

explanation = baseline.explanation
# Only the open tab is drawn (a click on another reruns the page): the Why and What-if tabs hold five charts and
# the what-if sliders, which the browser otherwise draws on every visit; the open tab is kept for the session.
trends_tab, outcomes_tab, why_tab, whatif_tab = st.tabs(["Trends", "Outcomes", "Why this prediction", "What if"],
                                                        key="engine_tab", on_change="rerun")

with trends_tab:
    if trends_tab.open:
        left, right = st.columns([3, 1])
        scale = right.radio("Scale", ["regime-normalised", "raw"], key="engine_scale",
                            help="Regime-normalised: each reading minus its operating regime's training mean, "
                                 "in training standard deviations (what the models see).")
        options = SENSORS if scale == "raw" else ensemble.pipeline.sensors
        chosen = right.multiselect("Sensors", options, default=explanation.top_sensors(TOP_SENSORS),
                                   key=f"engine_sensors_{scale}", format_func=sensors.label)
        frame = engine if scale == "raw" else whatif.normalised(ensemble, engine)
        title = "Sensor readings" if scale == "raw" else "Regime-normalised sensors"
        left.plotly_chart(charts.sensor_trends(frame, chosen, title, separate=scale == "raw",
                                               y_title=None if scale == "raw" else "training σ from the regime mean"),
                          key="engine_trends")
        true_line = None
        if end_rul is not None:
            true_line = (end_rul + trajectory["cycle"].max() - trajectory["cycle"]).clip(upper=RUL_CAP)
        st.plotly_chart(charts.rul_trajectory(trajectory, true_line, outcomes), key="engine_trajectory")
        if not outcomes.empty:
            st.caption("Dotted lines mark the engine's recorded outcomes.")

with outcomes_tab:
    if outcomes_tab.open:
        message = st.session_state.pop("engine_outcome_message", None)
        if message is not None:
            st.success(ui.text(message), icon=":material/check_circle:")
        if outcomes.empty:
            st.caption("No outcome is recorded for this engine.")
        else:
            st.dataframe(outcomes, hide_index=True, width="stretch", key="engine_outcomes",
                         column_order=["cycle", "event", "note", "created_at", "model_version"],
                         column_config={"created_at": st.column_config.DatetimeColumn("recorded (UTC)"),
                                        "model_version": st.column_config.TextColumn("model serving then")})
        if closed:
            predictions = pd.DataFrame(history["predictions"])
            if len(predictions):
                predictions = predictions[predictions["cycle"] <= int(info["closed_cycle"])]
            if predictions.empty:
                st.info("No prediction of this engine was stored before it closed, so there is nothing to compare "
                        "with the RUL it realised.")
            else:
                st.plotly_chart(charts.prediction_history(predictions, int(info["closed_cycle"]), float(ensemble.cap),
                                                          outcomes), key="engine_prediction_history")
                st.caption(f"{len(predictions)} stored prediction(s) of this engine against the RUL it realised "
                           f"(closed cycle {int(info['closed_cycle'])} minus the prediction's cycle).")
        elif role in IN_SERVICE and not access.can("record_outcome"):
            access.note("record_outcome")
        elif role in IN_SERVICE:
            st.markdown("**Record an outcome**")
            with st.form(f"outcome_{dataset}_{engine_id}"):
                event = st.selectbox("Event", fleet_ops.EVENTS, key=f"outcome_event_{dataset}_{engine_id}",
                                     help="A failure or removal closes the engine: its readings become history "
                                          "(training data) and it leaves the fleet list. An inspection is only noted.")
                cycle = st.number_input("Cycle", min_value=1, value=int(info["last_cycle"]), step=1,
                                        key=f"outcome_cycle_{dataset}_{engine_id}",
                                        help="The cycle of the event; the last reading's cycle or later.")
                note = st.text_input("Note", key=f"outcome_note_{dataset}_{engine_id}")
                submitted = st.form_submit_button("Record outcome")
            if submitted and access.permit("record_outcome"):
                try:
                    result = fleet_ops.record_outcome(dataset, engine_id, int(cycle), event, note,
                                                      model_version=version)
                except UserError as err:
                    ui.show_error(err)
                else:
                    st.session_state["engine_outcome_message"] = outcome_command.render(result)
                    st.rerun()
        else:
            st.caption(f"Outcomes are recorded for engines in service; {ui.text(dataset)} is a {role} dataset.")

with why_tab:
    if why_tab.open:
        w = explanation.weight_xgb
        st.markdown("\n".join(f"- {line}" for line in whatif.labelled_sentences(explanation)))
        st.plotly_chart(charts.explanation_waterfall(explanation.breakdown(TOP_CHART)), key="why_sensors")
        st.caption(
            f"Each input's effect combines the two models by the ensemble's RUL weights (XGBoost {w:.2f}, "
            f"LSTM {1 - w:.2f}). The approximation is what the attributions leave out: each model's RUL and the "
            f"blend are clipped to 0–{ensemble.cap:.0f} cycles, and the LSTM's attributions are estimated by "
            "sampling. σ is the sensor's spread within its operating regime in the training data."
        )
        tree_col, lstm_col = st.columns([3, 2])  # the trees' feature labels are long, the LSTM's mnemonics short
        tree_col.plotly_chart(charts.tree_waterfall(explanation.tree, explanation.tree_base), key="why_tree")
        lstm_col.plotly_chart(charts.lstm_totals(explanation.by_sensor), key="why_lstm")
        if w >= 1.0:
            lstm_col.caption("The ensemble gives the LSTM no weight in the RUL blend, so its part does not move "
                             "the prediction; it is shown for reference.")
        if st.toggle("Show the LSTM's effect per input and cycle", key="why_lstm_time"):
            over_time = explanation.lstm_over_time()
            window_cycles = list(range(baseline.cycle - over_time.shape[1] + 1, baseline.cycle + 1))
            st.plotly_chart(charts.lstm_heatmap(over_time, window_cycles), key="why_lstm_heatmap")
        fleet_explained = explain_view.stored(dataset, version)[0] if role in IN_SERVICE else None
        if fleet_explained is not None:
            st.plotly_chart(explain_charts.engine_vs_fleet(explanation.by_sensor, fleet_explained.importance(),
                                                           TOP_CHART), key="why_fleet")
            st.caption(f"The fleet mean is mean |SHAP| over {ui.text(dataset)}: "
                       f"{explain_view.sample_sentence(fleet_explained)}")
        elif role in IN_SERVICE:
            st.caption("The fleet-wide explanation of this dataset is not computed yet (it is, in the background, "
                       "after scoring).")
        st.page_link("pages/explain.py", label="Fleet explanations", icon=":material/insights:")


@st.fragment
def what_if_panel(ensemble: Ensemble, explainer: Explainer, engine: pd.DataFrame, baseline: whatif.Outcome,
                  prefix: str) -> None:
    """Sliders shifting the recent readings of the sensors the user picks (by default the most influential), and
    the updated prediction."""
    ranges = whatif.slider_ranges(ensemble)
    ranked = [s for s in baseline.explanation.top_sensors(len(ranges)) if s in ranges]
    shifted = st.multiselect("Sensors to shift", ranked, default=ranked[:TOP_SENSORS], key=f"{prefix}_sensors",
                             format_func=sensors.label,
                             help="Any sensor the model uses, listed by its effect on this prediction (largest "
                                  "first); the four largest are offered first.")
    keys = {s: f"{prefix}_{s}" for s in shifted}

    def reset() -> None:
        for key in keys.values():
            st.session_state[key] = 0.0

    top = st.columns([3, 1], vertical_alignment="bottom")
    last_n = top[0].slider("Shift the last N cycles", 1, max(len(engine), 2), min(10, len(engine)), key=f"{prefix}_n")
    top[1].button("Reset", on_click=reset, key=f"{prefix}_reset", icon=":material/restart_alt:")
    columns = [column for start in range(0, len(shifted), TOP_SENSORS)
               for column in st.columns(TOP_SENSORS)[:len(shifted) - start]]
    shifts = {}
    for column, sensor in zip(columns, shifted, strict=True):
        r = ranges[sensor]
        unit = sensors.unit_of(sensor)
        shifts[sensor] = column.slider(
            f"{sensors.mnemonic(sensor)} shift" + (f" ({unit})" if unit else ""), r.low, r.high, 0.0, r.step,
            key=keys[sensor],
            help=f"Added to {sensors.label(sensor)} over the last N cycles. Range ±3 training σ "
                 f"(σ = {r.sigma:.4g}{' ' + unit if unit else ''}).",
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
    if after.ood and not before.ood:
        st.warning(f"The shifted readings take the engine outside the model's experience: {after.ood_reason} "
                   "The what-if is an extrapolation there.", icon=":material/explore_off:")
    chart_col, shap_col = st.columns(2)
    chart_col.plotly_chart(charts.whatif_compare(before.to_dict(), after.to_dict()), key=f"{prefix}_compare")
    shown = after.explanation.breakdown(TOP_CHART)
    listed = [name for name, _ in shown.factors]
    shap_col.plotly_chart(charts.sensor_attribution(shown, compare=before.explanation.breakdown(inputs=listed)),
                          key=f"{prefix}_shap")
    st.markdown("\n".join(f"- {line}" for line in whatif.labelled_sentences(after.explanation)))


with whatif_tab:
    if whatif_tab.open:
        st.caption("Shift the recent readings of any sensors (those that move this prediction most come first) and "
                   "see the prediction, interval, risk and explanation change, next to the unmodified baseline.")
        what_if_panel(ensemble, explainer, engine, baseline, f"whatif_{dataset}_{engine_id}")
