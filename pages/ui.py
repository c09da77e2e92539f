"""Shared UI pieces for the pages: session defaults, cached resources, sidebar status."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core import config, jobs, registry, store
from core.errors import UserError
from models.ensemble import Ensemble

SESSION_DEFAULTS: dict[str, object] = {
    "fleet_datasets": None,
    "engine": None,
    "cost_miss": 50_000,
    "cost_inspection": 2_000,
}


def init_session() -> None:
    """Put the defaults every page relies on into this browser session's state."""
    for key, value in SESSION_DEFAULTS.items():
        st.session_state.setdefault(key, value)


@st.cache_resource(show_spinner=False)
def _registry_ready(uri: str) -> str:
    """Initialise MLflow's database once per tracking URI in this server process."""
    registry.init()
    return uri


def champion_version() -> int | None:
    """The champion's registry version, read on every rerun so a promotion is picked up at once."""
    _registry_ready(config.paths().mlflow_uri)
    return registry.champion_version()


@st.cache_resource(show_spinner="Loading model…", max_entries=4)
def load_model(version: int, uri: str) -> Ensemble:
    """The ensemble of a registry version, loaded once per (version, tracking URI)."""
    return Ensemble.load(registry.bundle_dir(version))


def serving_model() -> tuple[int, Ensemble] | None:
    """(version, ensemble) of the champion, or None when no model is trained yet."""
    version = champion_version()
    if version is None:
        return None
    return version, load_model(version, config.paths().mlflow_uri)


def datasets() -> pd.DataFrame:
    """The loaded datasets (read fresh each rerun; the query is cheap)."""
    with store.connect(read_only=True) as con:
        return store.list_datasets(con)


def show_error(err: Exception) -> None:
    """Show a failure as one sentence (never a traceback)."""
    st.error(str(err), icon=":material/error:")


def no_model_notice() -> None:
    """Explain that no model exists yet and link to where one is trained."""
    st.info("No model is trained yet. Train one on the Models page (or run `python -m core train`).")
    st.page_link("pages/models.py", label="Go to Models and retrain", icon=":material/model_training:")


def sidebar_status() -> None:
    """What is loaded, which model serves, and any running training job."""
    with st.sidebar:
        try:
            listing = datasets()
            version = champion_version()
        except UserError as err:
            show_error(err)
            return
        st.caption("Fleet data")
        if listing.empty:
            st.write("No data loaded yet.")
        else:
            st.write(f"{len(listing)} datasets · {int(listing['engines'].sum()):,} engines")
        st.caption("Serving model")
        st.write(f"`rul-ensemble` v{version} (champion)" if version is not None else "None yet")
        job = jobs.running()
        if job is not None:
            st.caption("Training")
            st.progress(float(job.progress or 0.0), text=f"job {job.id}: {job.phase or job.state}")
