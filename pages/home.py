"""Home: what is loaded, which model serves, and where to go next."""

from datetime import UTC, datetime, time, timedelta

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
ALERT_ROWS = 500
_WHAT = ("id", "opened (UTC)", "kind", "dataset", "engine", "value")
ALERT_COLUMNS = {
    "open": (*_WHAT, "alert"),
    "acknowledged": (*_WHAT, "acknowledged by", "acknowledged (UTC)", "note", "alert"),
    "snoozed": (*_WHAT, "snoozed by", "snoozed until (UTC)", "note", "alert"),
    "resolved": (*_WHAT, "closed (UTC)", "acknowledged by", "note", "alert"),
    "all": (*_WHAT, "state", "closed (UTC)", "acknowledged by", "snoozed until (UTC)", "note", "alert"),
}
"""The table's columns in each state (the sentence last, where it has room)."""
SNOOZE_TILL_DATE, SNOOZE_TILL_CHANGE = "a date", "the risk changes"


def _act(action: str) -> None:
    """Acknowledge or snooze the selected alerts (a button's callback, so the table drawn next shows the change)."""
    chosen = st.session_state.get("alert_chosen", [])
    found = access.identity()
    if not alerts.may_handle(None if found is None else found[1]):
        st.session_state["alert_outcome"] = ("refused", [alerts.handle_refusal(None if found is None else found[1])])
        return
    who = alerts.actor(None if found is None else found[0])
    note = st.session_state.get("alert_note", "")
    try:
        if action == "acknowledge":
            done, refused = alerts.acknowledge(chosen, who, note)
        else:
            day = st.session_state.get("alert_snooze_date")
            until = (datetime.combine(day, time.min) if st.session_state.get("alert_snooze_kind") == SNOOZE_TILL_DATE
                     and day is not None else None)
            done, refused = alerts.snooze(chosen, who, until, note)
    except UserError as err:
        st.session_state["alert_outcome"] = ("refused", [str(err)])
        return
    verb = "Acknowledged" if action == "acknowledge" else "Snoozed"
    st.session_state["alert_outcome"] = (f"{verb} {len(done)} alert{'' if len(done) == 1 else 's'}.", refused)
    _new_view()
    st.session_state["alert_note"] = ""


def _new_view() -> None:
    """Start the table with nothing selected (its rows changed: another filter, or alerts just acted on)."""
    st.session_state["alert_view"] = st.session_state.get("alert_view", 0) + 1


try:
    alert_counts = alerts.counts()
except UserError as err:
    ui.show_error(err)
    alert_counts = None
if alert_counts is not None:
    st.session_state.setdefault("alert_view", 0)
    waiting = alert_counts["open"]
    for column, kind in zip(st.columns(len(alerts.KINDS)), alerts.KINDS, strict=True):
        column.metric(alerts.KIND_LABELS[kind], waiting[kind], help="Open alerts of this kind (not acknowledged, "
                                                                    "snoozed or resolved)")
    totals = {state: sum(alert_counts[state].values()) for state in alerts.STATES}
    totals["all"] = sum(totals.values())
    state = st.segmented_control("State", [*alerts.STATES, "all"], default="open", key="alert_state",
                                 format_func=lambda s: f"{s} ({totals[s]:,})", on_change=_new_view) or "open"
    in_state = ({k: sum(alert_counts[s][k] for s in alerts.STATES) for k in alerts.KINDS} if state == "all"
                else alert_counts[state])
    kinds = st.pills("Kind", alerts.KINDS, selection_mode="multi", key="alert_kinds",
                     format_func=lambda k: f"{alerts.KIND_LABELS[k]} ({in_state[k]:,})",
                     help="None chosen: every kind.", on_change=_new_view)
    text = st.text_input("Filter", key="alert_filter", placeholder="dataset, engine or words of the alert",
                         on_change=_new_view)
    try:
        shown = alerts.list_episodes(state, kinds, ALERT_ROWS, text)
    except UserError as err:
        ui.show_error(err)
        shown = []
    outcome = st.session_state.pop("alert_outcome", None)
    if outcome is not None:
        if outcome[0] != "refused":
            st.success(outcome[0], icon=":material/check:")
        if outcome[1]:
            st.warning("Not changed:", icon=":material/warning:")
            for sentence in outcome[1]:
                st.text(sentence)
    if not shown:
        st.caption(f"No {'' if state == 'all' else state + ' '}alerts here. The rules: an engine at HIGH risk, a "
                   "fleet dataset drifting from the serving model's training data, live accuracy below validation, "
                   "a failed training job; each alert is one episode, from the moment its condition starts until "
                   "it ends.")
    else:
        frame = alerts.table(shown)
        wanted = sum(in_state[k] for k in (kinds or alerts.KINDS))
        st.caption(f"{len(frame):,} alert{'' if len(frame) == 1 else 's'}, newest first"
                   f"{f' (the newest {ALERT_ROWS:,} of {wanted:,})' if len(frame) == ALERT_ROWS else ''}; click a "
                   "column header to sort, select open or snoozed alerts to act on them.")
        event = st.dataframe(frame, hide_index=True, width="stretch", on_select="rerun",
                             selection_mode="multi-row", key=f"alert_table_{st.session_state.alert_view}",
                             column_order=ALERT_COLUMNS[state],
                             column_config={"value": st.column_config.NumberColumn(format="%.2f"),
                                            "alert": st.column_config.TextColumn(width="large")})
        chosen = [int(shown[i].id) for i in event.selection.rows if shown[i].state in ("open", "snoozed")]
        st.session_state["alert_chosen"] = chosen
        if not alerts.may_handle(access.role()):
            st.caption("Operators and admins can acknowledge or snooze alerts.")
        else:
            if len(chosen) < len(event.selection.rows):
                st.caption("Acknowledged and resolved alerts among the selected rows are left as they are.")
            st.text_input("Note (optional)", key="alert_note", max_chars=alerts.NOTE_MAX)
            a, b, c, d = st.columns([2, 2, 3, 2], vertical_alignment="bottom")
            a.button(f"Acknowledge {len(chosen)} selected", key="alert_ack", disabled=not chosen,
                     on_click=_act, args=("acknowledge",), icon=":material/done_all:")
            kind_of_snooze = b.radio("Snooze until", [SNOOZE_TILL_DATE, SNOOZE_TILL_CHANGE], key="alert_snooze_kind",
                                     help="Until a date (00:00 UTC), or until the risk changes: the alert's condition "
                                          "ends (the engine leaves HIGH, the drift stops); entering it again raises "
                                          "a new alert.")
            tomorrow = datetime.now(UTC).date() + timedelta(days=1)
            c.date_input("Date (UTC)", value=tomorrow, min_value=tomorrow, key="alert_snooze_date",
                         disabled=kind_of_snooze != SNOOZE_TILL_DATE)
            d.button(f"Snooze {len(chosen)} selected", key="alert_snooze", disabled=not chosen, on_click=_act,
                     args=("snooze",), icon=":material/snooze:")

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
