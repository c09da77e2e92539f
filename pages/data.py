"""Data: upload files or name a folder, check them, load them with progress, list and delete datasets."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config
from core.data import ingest, store, writes
from core.errors import UserError
from pages import ui

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


def _check_and_load(sources: list, key: str, role: str | None, dataset: str | None) -> None:
    """Show the validation report of ``sources`` and a button that loads the files that passed."""
    try:
        reports = ingest.inspect(sources, role=role, dataset=dataset)
    except UserError as err:
        ui.show_error(err)
        return
    frame = _report_frame(reports)
    st.dataframe(frame[REPORT_COLUMNS], hide_index=True, width="stretch")
    for report in reports:
        if report.status == "error":
            st.error(report.message, icon=":material/error:")
    bad = {_origin(r.source) for r in reports if r.status == "error"}
    good = {_origin(r.source) for r in reports} - bad
    keep: list = [s for s in sources if isinstance(s, tuple) and f"upload:{s[0]}" in good]
    keep += sorted(origin for origin in good if not origin.startswith("upload:"))
    new = [r for r in reports if r.status == "ok" and _origin(r.source) not in bad]
    if not new:
        st.info("Nothing new to load: every file is already loaded or has an error.")
        return
    label = f"Load {len(new)} file{'s' if len(new) != 1 else ''}"
    if bad:
        label += f" (skipping {len(bad)} with errors)"
    if st.button(label, type="primary", key=f"load_{key}"):
        bar = st.progress(0.0, text="Starting…")
        try:
            summary = ingest.load(keep, progress=lambda f, msg: bar.progress(min(max(f, 0.0), 1.0), text=msg),
                                  role=role, dataset=dataset)
        except UserError as err:
            ui.show_error(err)
            return
        appended = ", ".join(f"{a['readings_added']:,} readings to {a['dataset']}" for a in summary.appended)
        st.session_state["last_load"] = (
            f"Loaded {len(summary.datasets_added)} datasets, {summary.readings_added:,} readings and "
            f"{summary.truth_rows_added:,} true-RUL rows; {summary.skipped} files were already loaded."
            + (f" Appended {appended}." if appended else "")
        )
        st.rerun()


if "last_load" in st.session_state:
    st.success(st.session_state.pop("last_load"))

role_col, name_col = st.columns(2)
role_choice = role_col.selectbox("Role", [ROLE_FROM_NAME, "fleet", "history", "evaluation"], key="load_role",
                                 help=ROLE_HELP)
dataset_name = name_col.text_input(
    "Dataset name", key="load_dataset", placeholder="from the file name",
    help="Load every file into this dataset. Readings for an existing fleet or evaluation dataset are appended: "
         "rows already stored are skipped, a changed value is refused.",
).strip() or None
chosen_role = None if role_choice == ROLE_FROM_NAME else role_choice

upload_tab, folder_tab = st.tabs(["Upload files", "From a folder"])
with upload_tab:
    files = st.file_uploader(
        "C-MAPSS files, NASA's zip, CSV or Parquet",
        type=["txt", "gz", "zip", "csv", "parquet"],
        accept_multiple_files=True,
        key="uploads",
    )
    if files:
        _check_and_load([(f.name, f.getvalue()) for f in files], "upload", chosen_role, dataset_name)
with folder_tab:
    default_dir = config.data_dir()
    folder = st.text_input(
        "Folder on the server", value=str(default_dir) if default_dir else "", key="folder",
        placeholder="/path/to/CMAPSSData",
    )
    if folder and st.toggle("Check this folder", key="check_folder"):
        _check_and_load([folder], "folder", chosen_role, dataset_name)

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


left, right = st.columns([3, 1])
doomed = left.selectbox("Dataset to delete", listing["name"], key="delete_name")
right.write("")
if right.button("Delete…", key="delete"):
    st.session_state["pending_delete"] = doomed

pending = st.session_state.get("pending_delete")
if pending:
    st.warning(f"Delete **{pending}** with its readings, true RUL, predictions and feedback? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete {pending}", type="primary", key="confirm_delete"):
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
