"""Models: registry versions side by side, one-click retrain with live progress, promotion and rollback."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.errors import UserError
from core.operations import job_records, jobs, registry, retrain
from pages import charts, ui

METRIC_LABELS = {
    "val_rmse": "Validation RMSE",
    "val_mae": "Validation MAE",
    "val_phm08": "Validation PHM08 score",
    "val_f2": "Validation F2",
    "val_recall": "Validation recall",
    "val_precision": "Validation precision",
    "val_roc_auc": "Validation ROC-AUC",
    "val_coverage": "Validation interval coverage",
}

st.title("Models and retraining")

try:
    champion = ui.champion_version()
    versions = registry.list_versions()
    listing = ui.datasets()
except UserError as err:
    ui.show_error(err)
    st.stop()


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    tests = sorted(c for c in frame.columns if c.startswith("test_") and c.endswith("_rmse"))
    return [c for c in METRIC_LABELS if c in frame.columns] + tests


st.subheader("Registered versions")
if versions.empty:
    st.info("No model is registered yet: press Retrain below to train the first one.")
else:
    shown = versions[["version", "aliases", "created", "data", "device", *_metric_columns(versions), "gate"]]
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={c: st.column_config.NumberColumn(format="%.3f") for c in _metric_columns(versions)},
    )
    choices = [int(v) for v in versions["version"] if int(v) != champion]
    if choices:
        left, right = st.columns([2, 1])
        target = left.selectbox(
            "Promote or roll back to version", choices, key="promote_version",
            help="Moves the champion alias; every page serves that version on its next rerun.",
        )
        right.write("")
        if right.button(f"Make v{target} champion", key="promote"):
            try:
                registry.set_alias(registry.CHAMPION, int(target))
            except UserError as err:
                ui.show_error(err)
            else:
                st.toast(f"Version {target} is now the champion.")
                st.rerun()

st.subheader("Retrain")
train_names = sorted(listing.loc[listing["split"] == "train", "name"]) if not listing.empty else []
with st.expander("Options"):
    chosen = st.multiselect("Training datasets", train_names, default=train_names, key="retrain_datasets")
    defaults = retrain.make_config()
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("LSTM epochs", 1, 500, int(defaults.epochs), key="retrain_epochs")
    trees = c2.number_input("XGBoost trees", 10, 5000, int(defaults.n_trees), step=50, key="retrain_trees")
    device = c3.radio("Device", ["auto", "cpu", "cuda"], horizontal=True, key="retrain_device",
                      help="auto uses CUDA when a GPU is present, the CPU otherwise.")
if st.button("Retrain", type="primary", disabled=not train_names, key="retrain"):
    try:
        with st.spinner("Exporting the training snapshot…"):
            snap = retrain.export_snapshot(chosen or train_names)
        job = retrain.start_job(
            snap, retrain.make_config(epochs=int(epochs), trees=int(trees), device=device), created_by="dashboard"
        )
    except UserError as err:
        ui.show_error(err)
    else:
        st.session_state["watched_job"] = job.id
        st.toast(f"Training job {job.id} started.")
if not train_names:
    st.caption("Load training data (train_FD00x) on the Data page to enable retraining.")


def _result_table(result: dict, champion_metrics: dict[str, float] | None) -> pd.DataFrame:
    metrics = result.get("metrics", {})
    names = [m for m in [*METRIC_LABELS, *sorted(k for k in metrics if k.startswith("test_"))] if m in metrics]
    table = pd.DataFrame({"metric": names, f"new v{result.get('version')}": [metrics[m] for m in names]})
    if champion_metrics is not None:
        table[f"previous champion v{result.get('previous_champion')}"] = [champion_metrics.get(m) for m in names]
    return table


def _show_job(job: job_records.JobRecord) -> None:
    state_icon = {"running": ":material/pending:", "queued": ":material/schedule:", "succeeded": ":material/check_circle:",
                  "failed": ":material/error:", "cancelled": ":material/cancel:"}
    st.markdown(f"**Job {job.id}** {state_icon.get(job.state, '')} {job.state} · device: `{job.device or '…'}`")
    if job.state in job_records.ACTIVE_STATES:
        eta = f" · ETA {job.eta_s:.0f} s" if job.eta_s is not None else ""
        steps = f" {job.step}/{job.total}" if job.total else ""
        st.progress(float(job.progress or 0.0), text=f"{job.phase}{steps}{eta}")
        if st.button("Cancel training", key="cancel_job"):
            try:
                jobs.cancel(job.id)
            except UserError as err:
                ui.show_error(err)
    if job.losses:
        st.plotly_chart(charts.loss_curves(job.losses), width="stretch", key="loss_chart")
    if job.state == "succeeded" and job.result:
        result = job.result
        verdict = st.success if result.get("promoted") else st.warning
        verdict(f"Version {result.get('version')} registered. {result.get('reason', '')}")
        previous = result.get("previous_champion")
        champion_metrics = registry.version_metrics(int(previous)) if previous is not None else None
        st.dataframe(_result_table(result, champion_metrics), hide_index=True, width="stretch")
    if job.state in ("failed", "cancelled"):
        st.error(f"The job {job.state}: {job.error} The serving model was not changed.")
    if job.log_tail:
        with st.expander("Log", expanded=job.state in job_records.ACTIVE_STATES):
            st.code("\n".join(job.log_tail[-30:]), language=None)


@st.fragment(run_every="1s")
def live_progress() -> None:
    """Poll the newest training job's record; refresh the whole page once it finishes."""
    latest = jobs.list_jobs(limit=1, kind="train")
    if not latest:
        st.caption("No training has run yet.")
        return
    job = latest[0]
    _show_job(job)
    was_active = st.session_state.get("job_active")
    st.session_state["job_active"] = job.state in job_records.ACTIVE_STATES
    if was_active and job.finished:
        st.rerun(scope="app")


st.subheader("Latest training")
live_progress()
