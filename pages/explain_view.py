"""The fleet explanation as the pages read it: the stored one (cached by the store's file stamp), the background
job that computes a missing or stale one, and its progress. Nothing here computes SHAP: the job does
(:mod:`core.operations.explain_job`)."""

from __future__ import annotations

import streamlit as st

from core.data import store
from core.errors import UserError
from core.operations import explain_job, job_records, jobs
from core.serving import fleet_explain
from pages import ui


@st.cache_data(show_spinner=False, max_entries=16)
def _stored(name: str, version: int, stamp: tuple) -> tuple[fleet_explain.FleetExplanation | None, bool]:
    """(the stored fleet explanation of `name` for `version` or None, whether it is stale), keyed by the store's
    stamp so that a new one is read once written."""
    with store.connect(read_only=True) as con:
        found = fleet_explain.load(con, name, version)
        stale = name in fleet_explain.stale_datasets(con, version)
    return found, stale


def stored(name: str, version: int) -> tuple[fleet_explain.FleetExplanation | None, bool]:
    """:func:`_stored` at the store's current stamp."""
    return _stored(name, version, store.stamp())


def refresh(version: int, created_by: str) -> job_records.JobRecord | None:
    """Start the background job for the stale fleet explanations of `version` (a cheap check when there are
    none); the running, started or failed job, or None."""
    return explain_job.start(version, created_by=created_by)


@st.fragment(run_every="1s")
def progress(job_id: str) -> None:
    """The job's progress, refreshed every second; the app reruns once it has ended. Declared only while the job
    runs, so an idle page costs nothing."""
    try:
        job = jobs.get(job_id)
    except UserError as err:
        ui.show_error(err)
        return
    if job.finished:
        st.rerun(scope="app")
    st.progress(min(max(job.progress, 0.0), 1.0),
                text=f"Explaining the fleet in the background (job {job.id}): "
                     f"{job.message or (job.log_tail[-1] if job.log_tail else 'starting')}")


def status(job: job_records.JobRecord | None, have: bool) -> None:
    """Say what the background job is doing for a view that has (`have`) or lacks a stored explanation."""
    if job is None:
        return
    if job.state == "failed":
        st.error("Computing the fleet explanation stopped with an error:", icon=":material/error:")
        st.text(job.error)  # the job's sentence may quote dataset names: text, never Markdown
        return
    if job.state in job_records.ACTIVE_STATES:
        st.info("The readings changed since this explanation was computed; a new one is being computed in the "
                "background." if have else "The fleet explanation is being computed in the background (a seeded "
                "sample of the engines, at most "
                f"{fleet_explain.SAMPLE:,}).", icon=":material/hourglass_top:")
        progress(job.id)


def sample_sentence(found: fleet_explain.FleetExplanation) -> str:
    """How many engines the explanation is computed on, and when, by which model version."""
    when = f"{found.computed_at:%Y-%m-%d %H:%M} UTC"
    if found.sampled >= found.engines:
        return (f"Computed on all {found.engines:,} open engines at their last cycle with model v{found.model_version}"
                f" ({when}).")
    return (f"Computed on a seeded random sample of {found.sampled:,} of the {found.engines:,} open engines (seed "
            f"{found.seed}), at their last cycle, with model v{found.model_version} ({when}): a sample keeps this "
            "view fast on a large fleet.")
