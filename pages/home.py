"""Home: what is loaded, which model serves, and where to go next."""

import streamlit as st

from core.errors import UserError
from core.operations import jobs, registry
from core.server import alerts, auth
from pages import access, ui

st.title("Turbofan fleet RUL")
st.caption("Remaining useful life, failure risk, explanations and drift for C-MAPSS turbofan fleets.")

try:
    listing = ui.datasets()
    engines = ui.engine_count()
    version = ui.champion_version()
except UserError as err:
    ui.show_error(err)
    st.stop()

data_col, model_col = st.columns(2)
with data_col:
    st.subheader("Fleet data")
    if listing.empty:
        st.warning(
            "No fleet data is loaded. On the Data page, upload the C-MAPSS files (or NASA's zip) "
            "or name a folder that holds them."
        )
    else:
        a, b, c = st.columns(3)
        a.metric("Datasets", len(listing))
        b.metric("Engines", f"{engines:,}", help="Each engine once: a closed engine's history copy is not counted again.")
        c.metric("Readings", f"{int(listing['rows'].sum()):,}")
        st.dataframe(
            listing[["name", "role", "subset", "engines", "rows", "loaded_at"]],
            hide_index=True,
            width="stretch",
        )
    st.page_link("pages/data.py", label="Load or manage data", icon=":material/database:")

with model_col:
    st.subheader("Serving model")
    if version is None:
        st.info("No model is trained yet: train one on the Models page.")
    else:
        metrics = registry.version_metrics(version)
        st.write(f"`rul-ensemble` version **{version}** is the champion.")
        a, b, c = st.columns(3)
        a.metric("Validation RMSE", f"{metrics.get('val_rmse', float('nan')):.2f} cycles")
        b.metric("Validation F2", f"{metrics.get('val_f2', float('nan')):.3f}")
        c.metric("Interval coverage", f"{metrics.get('val_coverage', float('nan')):.0%}")
    job = jobs.running()
    if job is not None:
        st.progress(float(job.progress or 0.0), text=f"Training job {job.id} is running: {job.phase}")

st.subheader("Alerts")
try:
    recent = alerts.list_alerts(limit=20)
except UserError as err:
    ui.show_error(err)
    recent = []
if recent:
    st.dataframe(
        [{"when (UTC)": a.created_at, "kind": a.kind, "alert": a.message} for a in recent],
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No alerts: none of the rules (an engine at HIGH risk, fleet drift, live accuracy, a failed "
               "training job) has fired.")

with st.expander("REST API access", icon=":material/key:"):
    st.write("Other systems call this server's API at `/api/v1` (documentation at `/api/v1/docs`, metrics at "
             "`/metrics`) with the header `Authorization: Bearer <token>`.")
    if not access.can("api_token"):
        st.caption("Ask an admin for a token of your own: `python -m core users token NAME` gives one with "
                   "your role.")
    else:
        try:
            st.code(auth.api_token(), language=None)
            st.caption(f"From {auth.token_source()} (the admin token); set `PM_API_TOKEN` to choose your own, or "
                       "issue a token with a user's role: `python -m core users token NAME`.")
        except UserError as err:
            ui.show_error(err)

st.subheader("Where next")
nav = st.columns(4)
nav[0].page_link("pages/fleet.py", label="Fleet: RUL and risk of every engine", icon=":material/flight:")
nav[1].page_link("pages/engine.py", label="Engine: trends, why, and what if", icon=":material/settings:")
nav[2].page_link("pages/drift.py", label="Drift: has the fleet changed?", icon=":material/monitoring:")
nav[3].page_link("pages/models.py", label="Models: versions and retraining", icon=":material/model_training:")
