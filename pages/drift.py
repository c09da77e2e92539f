"""Drift: compare current data with what the serving model was trained on (or any two datasets, as an
exploration), and run the streamed production simulation in its sandbox."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from core import config
from core.data import store
from core.data.cmapss import SENSORS
from core.errors import UserError
from core.monitoring import (
    default_drift,
    drift,
    history,
    prediction_drift,
    regimes,
    simulate,
    statistics,
    stream_plan,
    timelines,
    verdicts,
)
from core.monitoring import report as html_report
from core.operations import job_records, jobs, registry
from pages import access, drift_charts, ui

WINDOW_SUFFIX = " · latest window"
LEVEL_BOXES = {"retrain": st.error, "alert": st.warning, "warn": st.info, "none": st.success}
HEADLINES = {
    "retrain": "Retraining recommended",
    "alert": "Some sensors drift beyond the alert threshold",
    "warn": "Slight shifts",
    "none": "No drift",
}
EXPLORATORY_HEADLINES = {"retrain": "These datasets differ strongly", "alert": "Some sensors differ beyond the alert threshold"}

st.title("Drift")
st.caption(
    "Has the fleet changed since the model was trained? By default the current data is compared with the "
    "serving model's training data; any other pair of datasets (or a reference and the latest window of a "
    "stream) can be compared as an exploration. Per sensor, raw or after operating-regime normalisation."
)


@st.cache_data(show_spinner=False, max_entries=8)
def model_training_data(version: int, uri: str) -> list[str]:
    """The datasets the serving model ``version`` was trained on, from its snapshot lineage."""
    return registry.training_datasets(version, registry.MODEL_NAME)


try:
    listing = ui.datasets()
    served = ui.serving_model()
    model_data = model_training_data(served[0], config.paths().mlflow_uri) if served else []
except UserError as err:
    ui.show_error(err)
    st.stop()


@st.cache_resource(show_spinner="Reading the readings to compare…", max_entries=8)
def side(names: tuple[str, ...], fingerprint: tuple) -> tuple[pd.DataFrame, drift.Sample]:
    """Readings of one side of a comparison, whole or a seeded sample of whole engines when it holds more than
    :data:`core.monitoring.drift.MAX_SIDE_ROWS` (shared read-only, cached per datasets and content)."""
    with store.connect(read_only=True) as con:
        return drift.read_side(con, names, drift.MAX_SIDE_ROWS)


def _frame(names: tuple[str, ...], window: int | None) -> pd.DataFrame:
    """Readings of one side (see :func:`side`), or of the latest ``window`` engines of a stream."""
    if window:
        parts = [ui.dataset_readings(name, ui.data_fingerprint([name])) for name in names]
        frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        return stream_plan.latest_window(frame, window)
    return side(names, ui.data_fingerprint(names))[0]


def _read_note(reference: tuple[str, ...], current: tuple[str, ...], window: int | None) -> str:
    """What each side of the comparison read, and that statistics of a sampled side come from the sample."""
    ref_sample = side(reference, ui.data_fingerprint(reference))[1]
    if window:
        frame = _frame(current, window)
        current_text = f"the latest {frame['unit'].nunique():,} engines ({len(frame):,} readings)"
        sampled = ref_sample.sampled
    else:
        cur_sample = side(current, ui.data_fingerprint(current))[1]
        current_text, sampled = cur_sample.describe(), ref_sample.sampled or cur_sample.sampled
    note = f"Compared: reference {ref_sample.describe()}, current {current_text}."
    if sampled:
        note += (f" A side holding more than {drift.MAX_SIDE_ROWS:,} readings is compared on a seeded sample of whole "
                 "engines (the same sample on every rerun): PSI, KS (and its p-value) and Wasserstein are computed "
                 "on the sample.")
    return note


def _reference(reference: tuple[str, ...], current: tuple[str, ...], window: int | None,
               matched: bool) -> pd.DataFrame:
    """The reference readings; with ``matched``, each engine cut at an age of the current engines
    (:func:`core.monitoring.drift.match_life_stage`)."""
    ref = _frame(reference, None)
    return drift.match_life_stage(ref, _frame(current, window)) if matched else ref


@st.cache_data(show_spinner="Predicting RUL for the prediction drift…", max_entries=32)
def predicted(rows: pd.DataFrame, model_version: int) -> np.ndarray:
    """Predicted RUL of ``model_version`` at every cycle of ``rows`` (cached by content, so another statistic or
    view does not score the same engines again)."""
    ensemble = ui.load_model(model_version, config.paths().mlflow_uri)
    return prediction_drift.predicted_rul(ensemble, rows)


@st.cache_data(show_spinner="Comparing the datasets…", max_entries=32)
def compare(reference: tuple[str, ...], current: tuple[str, ...], window: int | None, normalised: bool, method: str,
            limits: tuple[tuple[str, float], ...], model_version: int | None,
            stamp: tuple[int, int], matched: bool) -> dict[str, Any]:
    """The verdict of :func:`core.monitoring.verdicts.against_training` (the one the drift alert and ``python -m
    core drift`` reach) as :func:`core.monitoring.default_drift.result_of` gives it: the report, the part judged
    against, each part's share, the predicted-RUL samples and the multivariate score; ``stamp`` (row counts) keys
    fresh data."""
    predict = None if model_version is None else (lambda _side, _names, rows: predicted(rows, model_version))
    rows = _frame(current, window)
    comparison = verdicts.against_training(
        reference, rows, lambda names: _frame(names, None), predict, matched=matched,
        method=method, normalise=normalised, thresholds=statistics.Thresholds(**dict(limits)))
    judged = _reference(comparison.reference, current, window, matched)
    return default_drift.result_of(comparison, judged, rows, {})


@st.cache_data(show_spinner=False, max_entries=16)
def feature_values(reference: tuple[str, ...], current: tuple[str, ...], window: int | None, normalised: bool,
                   stamp: tuple[int, int], matched: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sensor columns of both sides, raw or regime-normalised (the values the statistics saw)."""
    ref, cur = _reference(reference, current, window, matched), _frame(current, window)
    if normalised:
        ref_norm, cur_norm, _ = regimes.normalise_by_regime(ref, cur, list(SENSORS))
        return ref_norm, cur_norm
    return ref[list(SENSORS)], cur[list(SENSORS)]


@st.cache_data(show_spinner="Computing the drift over time…", max_entries=16)
def drift_over_time(dataset: str, reference: tuple[str, ...], period: str, fingerprint: tuple) -> pd.DataFrame:
    """Drift per load or calendar week of ``dataset`` (:func:`core.monitoring.history.over_time`: the stored
    figures when current, else computed in DuckDB and stored)."""
    return history.over_time(dataset, reference, period)


def report_html(reference: tuple[str, ...], current: str, matched: bool, result: dict[str, Any], reference_label: str,
                note: str) -> bytes:
    """The self-contained HTML drift report of the comparison shown (built when the Download button is clicked)."""
    with store.connect(read_only=True) as con:
        judged = _reference(reference, (current,), None, matched)
        extras = html_report.collect(con, reference, current, judged, _frame((current,), None))
    return html_report.render(result["report"], reference_label, current, extras, [note]).encode("utf-8")


def _verdict(report: dict[str, Any], against_model: bool) -> None:
    """The verdict in a box coloured by its level, with the explanation as bullets.

    Only a comparison with the serving model's training data can recommend retraining (red); any
    other pair is an exploration and says so.
    """
    verdict = report["verdict"]
    level = verdict["level"]
    table = pd.DataFrame(report["features"])
    informative = table[table["informative"]]
    drifted = int(informative["drifted"].sum())
    counted = (f"{drifted} of {len(informative)} informative sensors drift"
               f"{'' if drifted or level != 'warn' else ', some pass the warn threshold'}; "
               f"drift share {report['drift_share']:.2f}")
    sentences = list(verdict["explanation"])
    if against_model:
        box, headline = LEVEL_BOXES.get(level, st.info), HEADLINES.get(level, level)
    else:
        box = st.info if level in ("none", "warn") else st.warning
        headline = EXPLORATORY_HEADLINES.get(level, HEADLINES.get(level, level))
        sentences = [s.replace(": retraining is recommended.", ".") for s in sentences]
        sentences.insert(0, "Exploratory comparison: the reference is not the serving model's training data, so "
                            "this shows how the two datasets differ, not whether the model needs retraining.")
    text = "\n".join(f"- {sentence}" for sentence in sentences)
    box(f"**{headline}** ({counted}).\n\n{text}")


def _metrics(report: dict[str, Any], reference: str, current_label: str) -> None:
    """Headline numbers: drift share (both views), prediction PSI, operating conditions."""
    regimes = report.get("regimes") or {}
    cols = st.columns(5)
    cols[0].metric("Drift share", f"{report['drift_share']:.2f}", help="Fraction of informative sensors that drift")
    raw, norm = report.get("raw_drift_share"), report.get("normalised_drift_share")
    cols[1].metric("Raw share", "n/a" if raw is None else f"{raw:.2f}")
    cols[2].metric("Normalised share", "n/a" if norm is None else f"{norm:.2f}")
    psi = report.get("prediction_psi")
    cols[3].metric("Prediction PSI", "n/a" if psi is None else f"{psi:.3f}",
                   help=f"PSI of predicted RUL ({report.get('prediction_psi_reason') or 'champion model'})")
    if regimes:
        cols[4].metric("Operating conditions", f"{regimes['reference_conditions']} vs {regimes['current_conditions']}",
                       help=f"Setting clusters in {ui.text(reference)} vs in {ui.text(current_label)}")


def _selected_feature(event: Any) -> str | None:
    """The feature of the bar clicked in the PSI chart, if any."""
    selection = event.get("selection") if event else None
    points = selection.get("points", []) if selection else []
    if not points:
        return None
    point = points[0]
    return str(point.get("customdata") or point.get("y") or "") or None


# Comparison ---------------------------------------------------------------------------------

st.subheader("Compare a reference with current data")
if listing.empty:
    st.info("No data is loaded yet: load the C-MAPSS files on the Data page first.")
    st.page_link("pages/data.py", label="Go to Data", icon=":material/database:")
else:
    names = list(listing["name"])
    streams = list(listing.loc[listing["role"] == "sandbox", "name"])
    current_options = names + [f"{s}{WINDOW_SUFFIX}" for s in streams]
    loaded_model_data = [n for n in model_data if n in names]
    model_option = (f"Training data of the serving model v{served[0]} ({', '.join(model_data)})"
                    if served and model_data and loaded_model_data == model_data else None)
    reference_options = ([model_option] if model_option else []) + names
    left, middle, right = st.columns([2, 2, 1])
    reference_choice = left.selectbox(
        "Reference", reference_options, key="drift_reference",
        help="What the current data is judged against: by default the serving model's training data. Any other "
             "dataset makes the comparison exploratory (no retraining advice).",
    )
    reference_names = tuple(model_data) if reference_choice == model_option else (reference_choice,)
    default_current = default_drift.default_current(names, reference_names)
    current_choice = middle.selectbox("Current", current_options, index=current_options.index(default_current),
                                      key="drift_current", help="Any dataset, or the latest engines of a stream.")
    method = right.selectbox("Statistic", statistics.METHODS, key="drift_method",
                             help="psi: population stability index; ks: Kolmogorov-Smirnov statistic; "
                                  "wasserstein: in reference standard deviations.")
    if model_option is None and served:
        missing = ", ".join(n for n in model_data if n not in names) or "its training data"
        st.caption(f"The serving model's training data ({ui.text(missing)}) is not loaded, so every comparison here is "
                   "exploratory.")
    against_model = reference_choice == model_option
    roles = dict(zip(listing["name"], listing["role"], strict=True))
    matched = against_model and roles.get(current_choice.removesuffix(WINDOW_SUFFIX)) != "history"
    if matched:
        st.caption("The current engines are in service, the training engines ran to failure: each training engine "
                   "is cut at the age of a randomly drawn current engine, so engines are compared at comparable "
                   "ages and a younger fleet does not read as drift.")
    reference_label = "training data" if against_model else reference_choice
    window: int | None = None
    current = current_choice
    if current_choice.endswith(WINDOW_SUFFIX):
        current = current_choice.removesuffix(WINDOW_SUFFIX)
        window = int(st.number_input("Engines in the latest window", 1, 500, 10, key="drift_window"))
    normalised = st.toggle(
        "Regime-normalised", key="drift_normalised",
        help="Z-score each sensor within its operating condition (setting cluster) of the reference, so only "
             "changes beyond the operating conditions count.",
    )
    thresholds = statistics.Thresholds()
    limits = tuple(thresholds.to_dict().items())
    warn, alert = thresholds.levels(method)
    rows = dict(zip(listing["name"], listing["rows"], strict=True))

    def stamp_of(reference: tuple[str, ...]) -> tuple[int, int]:
        return (sum(int(rows[n]) for n in reference), int(rows[current]))

    version = served[0] if served else None
    try:
        choice = default_drift.default_choice(listing, model_data, version)
        digest = (default_drift.key(listing, choice) if choice is not None and (
            reference_names, current, window, normalised, method, matched, limits) == (
            choice.reference, choice.current, None, False, "psi", choice.matched, tuple(
                statistics.Thresholds().to_dict().items())) else None)
        result = default_drift.load(digest) if digest else None
        if result is None:
            result = compare(reference_names, (current,), window, normalised, method, limits, version,
                             stamp_of(reference_names), matched)
            if digest:
                default_drift.save(digest, result)
        if tuple(result["reference"]) != reference_names:
            nearest = tuple(result["reference"])
            shares = {tuple(part): share for part, share in result["shares"]}
            # Data like any one part of a mixed training set is within the model's experience, so the verdict is
            # judged against the nearest part (core.monitoring.verdicts.against_training).
            st.caption(f"Judged against {ui.text(', '.join(nearest))}, the part of v{version}'s training data "
                       f"nearest to {ui.text(current)} (drift share {shares[nearest]:.2f}); data like any "
                       "one part of the training data is within the model's experience.")
            reference_names, reference_label = nearest, f"training data ({', '.join(nearest)})"
        comparison = (reference_names, current, window, normalised, method)
    except UserError as err:
        ui.show_error(err)
    else:
        report = result["report"]
        st.caption(_read_note(reference_names, (current,), window))
        current_label = current_choice if window is None else f"latest {window} engines of {current}"
        _metrics(report, reference_label, current_label)
        _verdict(report, against_model)
        scored = result["multivariate"]
        if "reason" in scored:
            st.caption(f"Multivariate drift not measured: {ui.text(scored['reason'])}")
        else:
            box = st.warning if scored["drifted"] else st.success
            box(f"**Multivariate drift {'beyond' if scored['drifted'] else 'within'} the reference band**: "
                f"PCA reconstruction error {scored['score']:.3f} (band {scored['lower']:.3f} to {scored['upper']:.3f}, "
                f"{len(scored['sensors'])} sensors, {scored['components']} components, raw values): how badly the "
                "reference's main patterns of the sensors moving together explain the current readings.")
        table = pd.DataFrame(report["features"])
        view = "regime-normalised" if normalised else "raw"
        st.markdown(f"**{method.upper()} per sensor** ({view} values, {ui.text(reference_label)} vs "
                    f"{ui.text(current_label)}); "
                    "click a bar to see that sensor's distributions. Grey bars: near-constant in the reference, "
                    "not counted (a longer one is cut at the axis end, its value written on it).")
        event = st.plotly_chart(drift_charts.score_bars(table, method, warn, alert), on_select="rerun",
                                selection_mode="points", key="drift_bars", width="stretch")
        clicked = _selected_feature(event)
        if clicked and clicked in SENSORS and clicked != st.session_state.get("drift_clicked"):
            st.session_state["drift_clicked"] = clicked
            st.session_state["drift_feature"] = clicked
        ranked = table.sort_values(["informative", method], ascending=False)["feature"].tolist()
        if (st.session_state.get("drift_feature") not in ranked
                or st.session_state.get("drift_comparison") != comparison):
            st.session_state["drift_feature"] = ranked[0]
        st.session_state["drift_comparison"] = comparison
        feature = st.selectbox("Sensor", ranked, key="drift_feature",
                               help="Opens on the sensor that drifts most; or click a bar above.")
        ref_values, cur_values = feature_values(reference_names, (current,), window, normalised,
                                                stamp_of(reference_names), matched)
        row = table.set_index("feature").loc[feature]
        st.plotly_chart(
            drift_charts.distributions(
                ref_values[feature], cur_values[feature], f"{feature} ({view})", reference_label, current_label,
                title=f"{feature} ({view}): psi {row['psi']:.3f}, ks {row['ks']:.3f}, level {row['level']}",
            ),
            key="drift_hist", width="stretch",
        )
        prediction = result["prediction"]
        if prediction["psi"] is not None:
            st.plotly_chart(
                drift_charts.distributions(
                    np.asarray(prediction["reference"]), np.asarray(prediction["current"]), "predicted RUL (cycles)",
                    reference_label, current_label, title=f"Predicted RUL of v{version}: prediction PSI {prediction['psi']:.3f}",
                ),
                key="drift_pred_hist", width="stretch",
            )
        else:
            ui.no_model_notice()
        with st.expander("Table"):
            st.dataframe(table, hide_index=True, width="stretch")
        if window is None:
            note = _read_note(reference_names, (current,), None)
            st.download_button(
                "Download the drift report (HTML)", key="drift_report", on_click="ignore", mime="text/html",
                file_name=f"drift-{current}.html".replace("/", "_"), icon=":material/download:",
                data=functools.partial(report_html, reference_names, current, matched, result, reference_label, note),
                help="One self-contained file (charts embedded, opens offline): every sensor's verdict, the "
                     "multivariate score, drift per load and the data-quality findings.")
            st.markdown(f"**Drift over time** of {ui.text(current)} against {ui.text(reference_label)} (raw PSI, "
                        "drift share per load or per calendar week of loading)")
            period = st.radio("Per", history.PERIODS, horizontal=True, key="drift_period",
                              format_func=lambda p: "load" if p == "load" else "calendar week")
            try:
                points = drift_over_time(current, reference_names, period,
                                         ui.data_fingerprint([current, *reference_names]))
            except UserError as err:
                ui.show_error(err)
            else:
                st.plotly_chart(html_report.history_figure(points, period, thresholds.share), key="drift_history",
                                width="stretch")


# Production simulation ----------------------------------------------------------------------

st.subheader("Production simulation")
st.info(
    f"**A sandbox.** The simulation registers its models as `{registry.SIM_MODEL_NAME}` and streams into its own "
    f"store: the serving `{registry.MODEL_NAME}` (champion and challenger), the Fleet page's numbers and the Models "
    "page's latest training stay exactly as they are. Its versions are listed under Simulation versions on the "
    "Models page.",
    icon=":material/science:",
)
st.caption(
    "Quarters T0..T3 = FD001..FD004 stream into the sandbox's `stream_sim` dataset, a few engines of the next "
    "quarter mixed in near each boundary. A model trained on T0 serves first (a sandbox copy of the champion when "
    "that was trained on FD001 alone); each step measures drift share, prediction PSI and live RMSE on the engines just streamed. With auto-retrain, "
    "a step whose verdict recommends retraining starts a training job on the stream seen so far, and the "
    "promotion gate decides whether the new version serves; a version the gate keeps out runs in shadow on the "
    "next step's engines and is promoted if its live error there beats the champion's."
)
defaults = stream_plan.Settings()
with st.expander("Simulation settings"):
    c1, c2, c3, c4 = st.columns(4)
    steps = c1.number_input("Steps", 4, 200, defaults.steps, key="sim_steps")
    per_step = c2.number_input("Engines per step", 1, 60, defaults.engines_per_step, key="sim_engines")
    epochs = c3.number_input("Retrain LSTM epochs", 1, 50, defaults.epochs, key="sim_epochs")
    trees = c4.number_input("Retrain XGBoost trees", 10, 2000, defaults.trees, step=10, key="sim_trees")
auto_retrain = st.toggle("Auto-retrain on threshold crossings", value=True, key="sim_auto_retrain")
if not access.can("simulate"):
    access.note("simulate")
elif (st.button("Start simulation", type="primary", key="sim_start", disabled=listing.empty)
      and access.permit("simulate")):
    try:
        settings = stream_plan.Settings(steps=int(steps), engines_per_step=int(per_step), auto_retrain=auto_retrain,
                                     epochs=int(epochs), trees=int(trees))
        record = simulate.start_job(settings, created_by="dashboard")
    except UserError as err:
        ui.show_error(err)
    else:
        st.toast(f"Simulation job {record.id} started.")


def _show_simulation(record: job_records.JobRecord | None, timeline: dict[str, Any] | None) -> None:
    """Progress and cancel while a run is active; then the summary, the timeline chart and the events."""
    if record is not None and record.state in job_records.ACTIVE_STATES:
        done = len(timeline["steps"]) if timeline else 0
        total = timeline["steps_total"] if timeline else record.total or 1
        message = (timeline or {}).get("message") or record.phase
        st.progress(min(1.0, done / max(1, total)), text=f"Step {done}/{total}: {ui.text(message)}")
        if (access.can("cancel_job") and st.button("Cancel simulation", key="sim_cancel")
                and access.permit("cancel_job")):
            try:
                jobs.cancel(record.id)
            except UserError as err:
                ui.show_error(err)
    elif record is not None and record.state in ("failed", "cancelled"):
        st.error(f"The simulation job {record.id} {record.state}: {ui.text(record.error)}")
    if timeline is None:
        st.caption("No simulation has run yet.")
        return
    summary = timelines.summary(timeline)
    served = ", ".join(f"v{v}" for v in summary["versions_served"])
    st.markdown(
        f"**{summary['status']}** · {summary['steps_done']}/{summary['steps_total']} steps · "
        f"{summary['crossings']} threshold crossings · {summary['retrains']} retrains ({summary['promoted']} promoted)"
        f" · versions served: {served or 'none yet'} (of the sandbox `{registry.SIM_MODEL_NAME}`)"
        f" · {summary['elapsed_s'] or 0:.0f} s"
    )
    st.plotly_chart(drift_charts.timeline(timeline), key="sim_timeline", width="stretch")
    if timeline.get("events"):
        with st.expander("Events", expanded=True):
            st.markdown("\n".join(f"- {ui.text(e['text'])}" for e in timeline["events"]))


def _simulation_state() -> tuple[job_records.JobRecord | None, dict[str, Any] | None]:
    """The newest simulation job and the timeline to draw (the active job's, else the newest on disk)."""
    record = simulate.latest_job()
    found = timelines.latest_timeline()
    timeline = found[1] if found else None
    if record is not None and record.state in job_records.ACTIVE_STATES:
        path = record.data.get("timeline")
        try:
            timeline = timelines.read_timeline(path) if path else timeline
        except UserError:
            timeline = None
    return record, timeline


try:
    sim_record, sim_timeline = _simulation_state()
except UserError as err:
    ui.show_error(err)
    sim_record, sim_timeline = None, None
running = sim_record is not None and sim_record.state in job_records.ACTIVE_STATES


@st.fragment(run_every="2s" if running else None)
def simulation_panel() -> None:
    """The simulation's progress and timeline; polls every 2 s while a run is active."""
    record, timeline = _simulation_state()
    _show_simulation(record, timeline)
    if running and (record is None or record.finished):
        st.rerun(scope="app")


simulation_panel()
