"""Models: registry versions side by side, two versions compared, one-click retrain with live progress, promotion and rollback.

The live progress polls (``st.fragment(run_every=...)``) only while a training job is active; once it
finishes the page reruns without a timer, so an idle tab costs nothing.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config
from core.data import fleet_ops, queries, store
from core.errors import UserError
from core.operations import compare, job_progress, job_records, jobs, promotion, registry, retrain, version_table
from pages import access, model_charts, ui

st.title("Models and retraining")

try:
    champion = ui.champion_version()
    versions = registry.list_versions(registry.MODEL_NAME)
    listing = ui.datasets()
    latest_jobs = jobs.list_jobs(limit=1, kind=retrain.TRAIN_KIND)
    busy = jobs.running()
except UserError as err:
    ui.show_error(err)
    st.stop()
watching = bool(latest_jobs) and latest_jobs[0].state in job_records.ACTIVE_STATES


def _labelled(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The versions table with reader's column names and number formats."""
    metrics = version_table.validation_keys(frame.columns)[:6] + version_table.test_keys(frame.columns)
    shown = frame.assign(
        created=frame["created"].dt.strftime("%Y-%m-%d %H:%M"),
        created_by=frame.get("created_by", pd.Series("", index=frame.index)).map(version_table.creator_label),
    )
    columns = {"version": "Version", "aliases": "Aliases", "created": "Created (UTC)", "created_by": "Created by",
               "data": "Training data", "device": "Device", **{k: version_table.metric_label(k) for k in metrics},
               "gate": "Promotion gate"}
    shown = shown[[c for c in columns if c in shown.columns]].rename(columns=columns)
    formats = {version_table.metric_label(k): st.column_config.NumberColumn(format="%.3f") for k in metrics}
    return shown, formats


def _promotion_details(target: int) -> pd.DataFrame:
    """Date, creator, data and validation metrics of ``target`` beside the champion's."""
    rows = versions.set_index("version")
    keys = version_table.validation_keys(versions.columns)[:8]
    picked = [v for v in (target, champion) if v is not None and v in rows.index]
    table = {}
    for version in picked:
        row = rows.loc[version]
        name = f"v{version}" + (" (champion now)" if version == champion else "")
        table[name] = [row["created"].strftime("%Y-%m-%d %H:%M"), version_table.creator_label(row.get("created_by", "")),
                       row["data"] or "-", *[_fmt(row.get(k)) for k in keys]]
    return pd.DataFrame(table, index=["Created (UTC)", "Created by", "Training data",
                                      *[version_table.metric_label(k) for k in keys]])


def _left_out(frame: pd.DataFrame) -> str:
    """'; left out: v3 1 engine, …' for the versions whose test figures left engines out (``test_*_excluded``)."""
    keys = [str(c) for c in frame.columns if str(c).startswith("test_") and str(c).endswith("_excluded")]
    counts = {int(row["version"]): int(sum(row[k] for k in keys if pd.notna(row[k]))) for _, row in frame.iterrows()}
    notes = [f"v{version} {count} engine{'s' if count != 1 else ''}" for version, count in counts.items() if count]
    return f"; left out: {', '.join(notes)}" if notes else ""


def _fmt(value: object) -> str:
    return "-" if value is None or pd.isna(value) else f"{float(value):.3f}"


st.subheader("Registered versions")
if versions.empty:
    st.info("No model is registered yet: press Retrain below to train the first one.")
else:
    shown, formats = _labelled(versions)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=formats)
    st.caption("Test-set figures never count an evaluation engine the version was trained on (one whose failure or "
               "removal was recorded, so its readings became history)" + _left_out(versions) + ".")
    choices = [int(v) for v in versions["version"] if int(v) != champion]
    if choices and not access.can("promote"):
        access.note("promote")
    elif choices:
        left, right = st.columns([2, 1])
        target = left.selectbox(
            "Promote or roll back to version", choices, key="promote_version",
            help="Moves the champion alias; every page serves that version on its next rerun.",
        )
        right.write("")
        if right.button(f"Make v{target} champion…", key="promote"):
            st.session_state["promote_pending"] = int(target)
        pending = st.session_state.get("promote_pending")
        if pending is not None and pending in choices:
            with st.container(border=True):
                st.markdown(f"**Make v{pending} the champion?** Every page serves it from its next rerun "
                            f"(today: v{champion}).")
                st.dataframe(_promotion_details(pending), width="stretch")
                yes, no = st.columns(2)
                if (yes.button(f"Yes, make v{pending} champion", type="primary", key="promote_confirm")
                        and access.permit("promote")):
                    try:
                        promotion.set_alias(registry.CHAMPION, pending)
                    except UserError as err:
                        ui.show_error(err)
                    else:
                        st.session_state.pop("promote_pending", None)
                        st.toast(f"Version {pending} is now the champion.")
                        st.rerun()
                if no.button("Cancel", key="promote_cancel"):
                    st.session_state.pop("promote_pending", None)
                    st.rerun()
def _compare_section(numbers: list[int]) -> None:
    """Pick two versions; draw their differing parameters, metric deltas, overlaid loss curves and lineage."""
    left, right, go_col = st.columns([2, 2, 1])
    first = left.selectbox("Version A", numbers, index=1 if len(numbers) > 1 else 0, key="compare_a",
                           format_func=lambda v: f"v{v}" + (" (champion)" if v == champion else ""))
    second = right.selectbox("Version B", numbers, index=0, key="compare_b",
                             format_func=lambda v: f"v{v}" + (" (champion)" if v == champion else ""))
    go_col.write("")
    if go_col.button("Compare", key="compare"):
        st.session_state["compare_pair"] = (int(first), int(second))
    pair = st.session_state.get("compare_pair")
    if pair is None or not set(pair) <= set(numbers):
        return
    try:
        result = compare.compare(*pair)
    except UserError as err:
        ui.show_error(err)
        return
    a, b = result["a"]["version"], result["b"]["version"]
    st.caption(f"v{a} (A) against v{b} (B); every delta is B minus A.")
    st.markdown(f"**Parameters that differ** ({len(result['parameters'])}; {result['same_parameters']} equal)")
    if result["parameters"]:
        st.table(pd.DataFrame([{"Parameter": p["name"], f"v{a}": p["a"], f"v{b}": p["b"]}
                               for p in result["parameters"]]).set_index("Parameter"))
    else:
        st.caption("No parameter differs.")
    st.markdown("**Metrics**")
    metrics = pd.DataFrame([{"Set": m["group"], "Metric": m["label"], f"v{a}": m["a"], f"v{b}": m["b"],
                             "Delta (B - A)": m["delta"]} for m in result["metrics"]])
    number = st.column_config.NumberColumn(format="%.3f")
    st.dataframe(metrics, hide_index=True, width="stretch",
                 column_config={f"v{a}": number, f"v{b}": number, "Delta (B - A)": number})
    st.caption(result["live_note"])
    st.markdown("**Loss curves** (A solid, B dashed)")
    st.plotly_chart(model_charts.compared_losses(result["losses"], a, b), width="stretch", key="compare_losses")
    st.markdown("**Training data**")
    st.dataframe(pd.DataFrame([{"": row["field"], f"v{a}": row["a"], f"v{b}": row["b"],
                                "Same": "yes" if row["same"] else "no"} for row in result["lineage"]]),
                 hide_index=True, width="stretch")


if len(versions) >= 2:
    st.subheader("Compare two versions")
    _compare_section([int(v) for v in versions["version"]])

st.caption(
    "Every run, its parameters, losses and artifacts are in MLflow. To browse them, run "
    f"`mlflow ui --backend-store-uri {config.paths().mlflow_uri} --port 5000` in this folder "
    "(with the project's environment active) and open http://localhost:5000."
)

st.subheader("Live accuracy")
try:
    live = fleet_ops.live_accuracy()
except UserError as err:
    ui.show_error(err)
    live = {"by_version": []}
if live["by_version"]:
    st.caption(f"Stored predictions of {live['engines']} engine(s) closed by a failure or removal, against the RUL "
               "they realised (capped at 125 cycles), by the model version that made them.")
    st.dataframe(pd.DataFrame(live["by_version"]).rename(columns={
        "model_version": "Version", "engines": "Engines", "predictions": "Predictions", "rmse": "RMSE (cycles)",
        "mae": "MAE (cycles)", "coverage": "Interval coverage", "high_recall": "HIGH recall (fails ≤ 30)",
        "high_precision": "HIGH precision (fails ≤ 30)"}), hide_index=True, width="stretch")
else:
    st.caption("No live accuracy yet: it appears once engines that were scored are closed by a recorded failure "
               "or removal (Engine page or `python -m core outcome`).")

st.subheader("Retrain")
try:
    train_names, selected = retrain.selection()
except UserError as err:
    ui.show_error(err)
    train_names, selected = [], []


def _keep_selection() -> None:
    """Keep the operator's choice of training data in the store: it is the default of every later training."""
    if not access.can("retrain"):
        return
    try:
        retrain.save_selection(list(st.session_state["retrain_datasets"]))
    except UserError as err:
        st.session_state["retrain_selection_error"] = str(err)


with st.expander("Options"):
    chosen = st.multiselect(
        "Training datasets", train_names, default=selected, key="retrain_datasets", on_change=_keep_selection,
        help="Every history dataset (engines run to failure or removal, closed engines included, wherever they were "
             "in service). Your choice is kept for the next trainings; history datasets added later are included.")
    if "retrain_selection_error" in st.session_state:
        ui.show_error(UserError(st.session_state.pop("retrain_selection_error")))
    defaults = retrain.make_config()
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("LSTM epochs", 1, 500, int(defaults.epochs), key="retrain_epochs")
    trees = c2.number_input("XGBoost trees", 10, 5000, int(defaults.n_trees), step=50, key="retrain_trees")
    device = c3.radio("Device", ["auto", "cpu", "cuda"], horizontal=True, key="retrain_device",
                      help="auto uses CUDA when a GPU is present, the CPU otherwise.")
champion_created = None
if champion is not None and not versions.empty and champion in set(versions["version"]):
    champion_created = versions.set_index("version").at[champion, "created"]
try:
    with store.connect(read_only=True) as con:
        closed_new = queries.closed_since(con, None if champion_created is None else
                                          pd.Timestamp(champion_created).tz_localize(None).to_pydatetime())
except UserError:
    closed_new = 0
st.caption(f"Training uses history datasets only (engines run to failure or removal), {len(chosen)} of "
           f"{len(train_names)} selected. " + (f"{closed_new} engine(s) closed by a failure or removal since the "
                                               "champion was trained are in them." if closed_new else ""))
if not access.can("retrain"):
    access.note("retrain")
elif (st.button("Retrain", type="primary", disabled=not chosen or busy is not None, key="retrain")
      and access.permit("retrain")):
    try:
        with st.spinner("Exporting the training snapshot…"):
            snap = retrain.export_snapshot(chosen)
        job = retrain.start_job(
            snap, retrain.make_config(epochs=int(epochs), trees=int(trees), device=device), created_by="dashboard"
        )
    except UserError as err:
        ui.show_error(err)
    else:
        st.toast(f"Training job {job.id} started.")
        st.rerun()
if busy is not None:
    what = "the production simulation's training" if busy.kind == retrain.SIM_TRAIN_KIND else "a training"
    st.caption(f"Retrain is off while {what} runs (job {busy.id}): one training at a time.")
elif not train_names:
    st.caption("Load history data (engines run to failure, e.g. train_FD00x) on the Data page, or record failures "
               "of fleet engines, to enable retraining.")
elif not chosen:
    st.caption("Choose at least one training dataset under Options to retrain.")


def _result_table(result: dict, champion_metrics: dict[str, float] | None) -> pd.DataFrame:
    metrics = result.get("metrics", {})
    names = version_table.validation_keys(list(metrics)) + version_table.test_keys(list(metrics))
    table = pd.DataFrame({"metric": [version_table.metric_label(m) for m in names],
                          f"new v{result.get('version')}": [metrics[m] for m in names]})
    if champion_metrics is not None:
        table[f"previous champion v{result.get('previous_champion')}"] = [champion_metrics.get(m) for m in names]
    return table


def _show_job(job: job_records.JobRecord) -> None:
    state_icon = {"running": ":material/pending:", "queued": ":material/schedule:", "succeeded": ":material/check_circle:",
                  "failed": ":material/error:", "cancelled": ":material/cancel:"}
    who = f" · started by {ui.text(job.created_by)}" if job.created_by else ""
    st.markdown(f"**Job {job.id}** {state_icon.get(job.state, '')} {job.state} · device: `{job.device or '…'}`{who}")
    if job.state in job_records.ACTIVE_STATES:
        overall = job_progress.overall(job)
        st.progress(overall.fraction, text=overall.text())
        if (access.can("cancel_job") and st.button("Cancel training", key="cancel_job")
                and access.permit("cancel_job")):
            try:
                jobs.cancel(job.id)
            except UserError as err:
                ui.show_error(err)
    if job.losses:
        st.plotly_chart(model_charts.loss_curves(job.losses), width="stretch", key="loss_chart")
    if job.state == "succeeded" and job.result:
        result = job.result
        verdict = st.success if result.get("promoted") else st.warning
        verdict(f"Version {result.get('version')} registered. {result.get('reason', '')}")
        previous = result.get("previous_champion")
        champion_metrics = (registry.version_metrics(int(previous), registry.MODEL_NAME)
                            if previous is not None else None)
        st.dataframe(_result_table(result, champion_metrics), hide_index=True, width="stretch")
    if job.state in ("failed", "cancelled"):
        state, sentence = job_records.ending(job)
        shown = st.error if state == "failed" else st.info
        shown(f"{ui.text(sentence)} The serving model was not changed.",
              icon=":material/error:" if state == "failed" else ":material/cancel:")
    if job.log_tail:
        with st.expander("Log", expanded=job.state in job_records.ACTIVE_STATES):
            st.code("\n".join(job.log_tail[-30:]), language=None)


@st.fragment(run_every="1s" if watching else None)
def live_progress() -> None:
    """The newest training job; polls its record every second only while it is active."""
    latest = jobs.list_jobs(limit=1, kind=retrain.TRAIN_KIND)
    if not latest:
        st.caption("No training has run yet.")
        return
    _show_job(latest[0])
    if watching and latest[0].finished:
        st.rerun(scope="app")


st.subheader("Latest training")
live_progress()

st.subheader("Simulation versions")
try:
    sandbox = registry.list_versions(registry.SIM_MODEL_NAME)
except UserError as err:
    ui.show_error(err)
    sandbox = pd.DataFrame()
st.caption(f"The production simulation (Drift page) trains in its own sandbox, `{registry.SIM_MODEL_NAME}`: "
           "these versions never serve the dashboard and cannot be promoted here.")
if sandbox.empty:
    st.caption("No simulation has registered a version yet.")
else:
    with st.expander(f"{len(sandbox)} simulation versions"):
        shown, formats = _labelled(sandbox)
        shown.insert(5, "Copy of", sandbox["copied_from"].replace("", "-").to_numpy())
        st.dataframe(shown, hide_index=True, width="stretch", column_config=formats)
