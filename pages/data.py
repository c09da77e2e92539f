"""Data: upload files or name a folder under ``PM_IMPORT_ROOT`` (checked and loaded as background jobs), list and
delete datasets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import config
from core.data import import_root, ingest, store, writes
from core.errors import UserError
from core.monitoring import quality
from core.operations import ingest_job, job_records, jobs, registry, scoring_job
from pages import access, ui

st.title("Fleet data")
st.caption(
    "C-MAPSS files as NASA ships them (train_FD00x, test_FD00x, RUL_FD00x as .txt or .txt.gz, or NASA's zip), "
    "or CSV/Parquet with a header naming the 26 columns: engine (or unit), cycle, the settings and the sensors, "
    "by NASA's names (setting_1, sensor_11) or the C-MAPSS mnemonics (altitude, Ps30), in any order. "
    "Files are checked before anything is written."
)

ROLE_FROM_NAME = "from the file names"
ROLE_HELP = (
    "history: engines run to failure or removal, the only training data. fleet: engines in service, scored "
    "and never trained on. evaluation: in service with known RUL (a RUL_FD00x file), scored and evaluated. "
    "From the file names: train_* is history, test_* evaluation, anything else fleet."
)

REPORT_COLUMNS = ["file", "name", "role", "action", "subset", "rows", "engines", "status", "message"]


def _report_frame(reports: list[ingest.FileReport]) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in reports], columns=[*REPORT_COLUMNS, "source"])


def _origin(source: str) -> str:
    """The uploaded file or path a report came from (a zip member's report names its zip)."""
    return source.split("!", 1)[0]


def _show_reports(reports: list[ingest.FileReport]) -> tuple[list[ingest.FileReport], set[str], set[str]]:
    """Draw the validation table and each error; returns the loadable reports and the origins with and
    without errors."""
    frame = _report_frame(reports)
    st.dataframe(frame[REPORT_COLUMNS], hide_index=True, width="stretch")
    for report in reports:
        if report.status == "error":
            st.error(ui.text(report.message), icon=":material/error:")
    bad = {_origin(r.source) for r in reports if r.status == "error"}
    good = {_origin(r.source) for r in reports} - bad
    new = [r for r in reports if r.status == "ok" and _origin(r.source) not in bad]
    if not new:
        st.info("Nothing new to load: every file is already loaded or has an error.")
    return new, bad, good


def _load_label(new: list[ingest.FileReport], bad: set[str]) -> str:
    label = f"Load {len(new)} file{'s' if len(new) != 1 else ''}"
    return label + (f" (skipping {len(bad)} with errors)" if bad else "")


def _load_message(summary: dict) -> str:
    """The success line of a load, from :meth:`ingest.LoadSummary.to_dict` (as a folder job records it too)."""
    appended = ", ".join(f"{a['readings_added']:,} readings to {a['dataset']}" for a in summary["appended"])
    return (f"Loaded {len(summary['datasets_added'])} datasets, {summary['readings_added']:,} readings and "
            f"{summary['truth_rows_added']:,} true-RUL rows; {summary['skipped']} files were already loaded."
            + (f" Appended {appended}." if appended else ""))


def _loaded(summary: dict) -> None:
    """Keep a load's success line for the next run and start scoring the engines it added or changed; a load
    into a store without a model has started the first training (``first_model`` in the summary)."""
    message = _load_message(summary)
    try:
        scoring_job.start(created_by="data page")
    except UserError as err:
        message += f" Scoring the new readings could not start: {err}"
    st.session_state["last_load"] = message
    if summary.get("first_model"):
        st.session_state["first_model"] = summary["first_model"]


def _first_model() -> dict[str, str]:
    """After an upload: start the first training if no model exists yet (as `make run` and a folder load do)."""
    with st.spinner("Checking for a model…"):
        return ingest_job.first_model_after_load("dashboard")


def _check_and_load(sources: list, key: str, role: str | None, dataset: str | None) -> None:
    """Show the validation report of uploaded ``sources`` and a button that loads the files that passed."""
    if not access.can("load"):
        access.note("load")
        return
    try:
        reports = ingest.inspect(sources, role=role, dataset=dataset)
    except UserError as err:
        ui.show_error(err)
        return
    new, bad, good = _show_reports(reports)
    if not new:
        return
    keep = [s for s in sources if f"upload:{s[0]}" in good]
    if st.button(_load_label(new, bad), type="primary", key=f"load_{key}") and access.permit("load"):
        bar = st.progress(0.0, text="Starting…")
        try:
            summary = ingest.load(keep, progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg),
                                  role=role, dataset=dataset)
        except UserError as err:
            ui.show_error(err)
            return
        _loaded({**summary.to_dict(), **_first_model()})
        st.rerun()


FOLDER_JOB = "folder_job"  # session key of this session's folder check or load job (core.operations.ingest_job)


def _folder_job() -> job_records.JobRecord | None:
    job_id = st.session_state.get(FOLDER_JOB)
    if job_id is None:
        return None
    try:
        return jobs.get(job_id)
    except UserError as err:
        del st.session_state[FOLDER_JOB]
        ui.show_error(err)
        return None


def _start_folder_job(action: str, paths: list[str], role: str | None, dataset: str | None) -> None:
    """Stop this session's previous folder job, if still running, and start `action` on `paths`."""
    previous = _folder_job()
    try:
        if previous is not None and not previous.finished:
            jobs.cancel(previous.id)
        record = ingest_job.start(action, paths, role, dataset, created_by="dashboard")
    except UserError as err:
        st.session_state.pop(FOLDER_JOB, None)
        ui.show_error(err)
        return
    st.session_state[FOLDER_JOB] = record.id


def _show_finished_folder_job(job: job_records.JobRecord) -> None:
    """A check's report with its Load button, a load's success line, or why the job did not succeed."""
    if job.state != "succeeded":
        state, sentence = job_records.ending(job)
        if state == "failed":
            st.error(ui.text(sentence), icon=":material/error:")
        else:
            st.info(ui.text(sentence), icon=":material/cancel:")
        return
    if job.kind == ingest_job.LOAD_KIND:
        del st.session_state[FOLDER_JOB]
        _loaded(job.result)
        st.rerun()
    new, bad, good = _show_reports([ingest.FileReport(**r) for r in job.result.get("reports", [])])
    if new and st.button(_load_label(new, bad), type="primary", key="load_folder") and access.permit("load"):
        _start_folder_job("load", sorted(good), job.config.get("role"), job.config.get("dataset"))
        st.rerun()


def _folder_section(root: Path, role: str | None, dataset: str | None) -> None:
    """The folder box (paths under ``PM_IMPORT_ROOT`` only); checks and loads run as background jobs."""
    if not access.can("load"):
        access.note("load")
        return
    default_dir = config.data_dir()
    inside = default_dir is not None and default_dir.resolve().is_relative_to(root)
    folder = st.text_input(
        "Folder on the server", value=str(default_dir) if inside else str(root), key="folder",
        help=f"Only paths under {ui.text(root)} (PM_IMPORT_ROOT) can be read; a relative path is taken under it.",
    )
    if st.button("Check this folder", key="check_folder", disabled=not folder) and access.permit("load"):
        _start_folder_job("check", [folder], role, dataset)
    job = _folder_job()
    watching = job is not None and not job.finished

    @st.fragment(run_every="1s" if watching else None)
    def folder_progress() -> None:
        """While the job runs: renew its lease (it stops once this page is gone), show progress and a Stop button."""
        current = _folder_job()
        if current is None or current.finished:
            if watching:
                st.rerun(scope="app")
            return
        ingest_job.renew(current.id)
        verb = "Checking" if current.kind == ingest_job.CHECK_KIND else "Loading"
        paths = ui.text(", ".join(current.data.get("paths", [])))
        st.progress(current.progress, text=f"{verb} {paths}… (job {current.id})")
        if st.button("Stop", key="stop_folder_job"):
            try:
                jobs.cancel(current.id)
            except UserError as err:
                ui.show_error(err)
            st.rerun(scope="app")

    folder_progress()
    if job is not None and job.finished:
        _show_finished_folder_job(job)


if "last_load" in st.session_state:
    st.success(ui.text(st.session_state.pop("last_load")))
if "first_model" in st.session_state:
    with st.container(border=True):
        st.text(st.session_state.pop("first_model"))
        st.page_link("pages/models.py", label="Follow the training on the Models page", icon=":material/model_training:")

role_col, name_col = st.columns(2)
role_choice = role_col.selectbox("Role", [ROLE_FROM_NAME, "fleet", "history", "evaluation"], key="load_role",
                                 help=ROLE_HELP)
dataset_name = name_col.text_input(
    "Dataset name", key="load_dataset", placeholder="from the file name",
    help="Load every file into this dataset. Readings for an existing fleet or evaluation dataset are appended: "
         "rows already stored are skipped, a changed value is refused.",
).strip() or None
chosen_role = None if role_choice == ROLE_FROM_NAME else role_choice

import_folder = import_root.import_root()
if import_folder is None:
    upload_tab, folder_tab = st.container(), None
else:
    upload_tab, folder_tab = st.tabs(["Upload files", "From a folder"])
with upload_tab:
    if not access.can("load"):
        access.note("load")
    files = st.file_uploader(
        "C-MAPSS files, NASA's zip, CSV or Parquet",
        type=["txt", "gz", "zip", "csv", "parquet"],
        accept_multiple_files=True,
        key="uploads",
        disabled=not access.can("load"),
    )
    if files:
        _check_and_load([(f.name, f.getvalue()) for f in files], "upload", chosen_role, dataset_name)
if folder_tab is not None and import_folder is not None:
    with folder_tab:
        _folder_section(import_folder, chosen_role, dataset_name)

st.subheader("Loaded datasets")
try:
    listing = ui.datasets()
except UserError as err:
    ui.show_error(err)
    st.stop()
if listing.empty:
    st.info("No datasets are loaded yet.")
    st.stop()

st.dataframe(
    listing[["name", "role", "subset", "engines", "closed", "rows", "has_truth", "source", "loaded_at",
             "last_loaded_at"]],
    hide_index=True,
    width="stretch",
    column_config={"has_truth": st.column_config.CheckboxColumn("true RUL"),
                   "closed": st.column_config.NumberColumn("closed engines"),
                   "loaded_at": st.column_config.DatetimeColumn("first loaded"),
                   "last_loaded_at": st.column_config.DatetimeColumn("last loaded")},
)


if access.can("delete"):
    left, right = st.columns([3, 1])
    doomed = left.selectbox("Dataset to delete", listing["name"], key="delete_name")
    right.write("")
    if right.button("Delete…", key="delete"):
        st.session_state["pending_delete"] = doomed
else:
    access.note("delete")

pending = st.session_state.get("pending_delete")
if pending:
    st.warning(f"Delete **{ui.text(pending)}** with its readings, true RUL, predictions and feedback? This cannot be "
               "undone.")
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete {ui.text(pending)}", type="primary", key="confirm_delete") and access.permit("delete"):
        del st.session_state["pending_delete"]
        try:
            with store.connect() as con:
                writes.delete_dataset(con, pending)
        except UserError as err:
            ui.show_error(err)
        else:
            st.session_state["last_load"] = f"Deleted {pending}."
            st.rerun()
    if no.button("Cancel", key="cancel_delete"):
        del st.session_state["pending_delete"]
        st.rerun()


@st.cache_data(show_spinner="Checking the data quality…", max_entries=16)
def _quality(name: str, training: tuple[str, ...], fingerprint: tuple) -> pd.DataFrame:
    """The data-quality checks of each load of ``name`` (:func:`core.monitoring.quality.check`), cached by content."""
    with store.connect(read_only=True) as con:
        return quality.check(con, name, training)


st.subheader("Data quality per load")
st.caption(f"Per load (a file or an append) of a dataset: missing or repeated cycles, a sensor stuck for "
           f"{quality.STUCK_CYCLES}+ cycles, and readings outside the training range (the serving model's training "
           "data, else every history dataset).")
checked = st.selectbox("Dataset to check", listing["name"], key="quality_name")
try:
    served = ui.serving_model()
    trained_on = registry.training_datasets(served[0], registry.MODEL_NAME) if served else []
    training = quality.training_reference(listing, trained_on)
    if not training:
        st.info("No history dataset is loaded, so there is no training range to check against.")
    elif st.button("Check data quality", key="quality_check") or st.session_state.get("quality_shown") == checked:
        st.session_state["quality_shown"] = checked
        found = _quality(checked, training, ui.data_fingerprint([checked, *training]))
        st.caption(f"Training range from {ui.text(', '.join(training))}.")
        for sentence in quality.findings(found) or ["No problems found in any load."]:
            st.text(sentence)
        st.dataframe(found, hide_index=True, width="stretch")
except UserError as err:
    ui.show_error(err)
