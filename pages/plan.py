"""Plan: which engines in service to remove in which week, under shop capacity, at the lowest expected cost.

The page reads its controls, asks :mod:`core.planning` for the plan of the stored scores (cached by what the plan
reads, the model version and the request, so reruns and other sessions reuse it until scores, readings, engines or
utilisation change), and draws: the calendar, the removals the shop should expect, the plan's expected cost against the
baselines, each engine's row with a link to its Engine page and its RUL distribution, the CSV, a printable work
package per week, and accepting the plan.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import streamlit as st

from core import config
from core.data import store
from core.errors import UserError
from core.planning import accepted, exports, planner, service, utilisation, weeks
from models.rul_distribution import RulDistribution
from pages import access, plan_charts, ui

IN_SERVICE = ("fleet", "evaluation")
DEFAULTS: dict[str, object] = {"plan_weeks": 8, "plan_slots": 5, "plan_cost_failure": 50_000,
                               "plan_cost_removal": 2_000, "plan_cost_life": 10.0, "plan_utilisation": None,
                               "plan_datasets": None}
MAX_HORIZON = 26
PICK_LIMIT = 1_000  # engines offered in the distribution's picker at most (the table's first ones)
TABLE_PAGE_ROWS = 500  # engine rows drawn at once: a 20,000-engine plan is paged, not sent whole to the browser
WORK_PACKAGE_SENSORS = 8  # sensors of the model's pipeline shown in a work package's latest readings


@st.cache_resource(show_spinner="Planning…", max_entries=16)
def plan_view(inputs: tuple, version: int, request: planner.PlanRequest, datasets: tuple[str, ...]) -> planner.Plan:
    """The plan of `datasets`' engines in service, kept while what it reads (`inputs`, :func:`plan_inputs`) is
    unchanged.

    One object shared by every session, never changed by the page (a resource, not data: a 20,000-engine plan is
    not copied through pickle on each rerun)."""
    ensemble = ui.load_model(version, config.paths().mlflow_uri)
    return service.fleet_plan(version, ensemble.conformal, request, datasets)


@st.cache_data(show_spinner=False, max_entries=8)
def plan_inputs(stamp: tuple, version: int) -> tuple:
    """What a plan of `version` reads (:func:`core.planning.service.inputs_stamp`), read again when the store's file
    `stamp` changes: the plan is then recomputed only when its inputs changed."""
    return service.inputs_stamp(version)


@st.cache_data(show_spinner=False, max_entries=8)
def stored_utilisation(stamp: tuple) -> dict[str, float]:
    """Cycles per day stored per dataset."""
    with store.connect(read_only=True) as con:
        return utilisation.read(con)


@st.cache_data(show_spinner=False, max_entries=8)
def stored_engine_utilisation(stamp: tuple) -> dict[tuple[str, str], float]:
    """Cycles per day stored per engine."""
    with store.connect(read_only=True) as con:
        return utilisation.read_engines(con)


@st.cache_data(show_spinner=False, max_entries=8)
def recent_plans(stamp: tuple) -> pd.DataFrame:
    """The newest accepted plans."""
    with store.connect(read_only=True) as con:
        return accepted.list_plans(con, limit=5)


def engine_url(dataset: str, engine: str) -> str:
    """The Engine page's shareable address for one engine."""
    return "/engine?" + urlencode({"dataset": dataset, "engine": engine})


ui.init_session()
st.title("Plan")
st.caption(
    "Which engines to remove in which calendar week, with the shop's slots, at the lowest expected cost: each "
    "engine's remaining life as a distribution (from the model's calibrated intervals), the risk of failing "
    "before each week's end, what a failure, a removal and the life it gives up cost. Re-plan as scores change."
)

version, ensemble, listing = ui.model_and_data()
roles = listing.set_index("name")["role"]
names = [n for n in listing["name"] if roles[n] in IN_SERVICE]
if not names:
    st.info("No fleet or evaluation dataset is loaded: a plan needs engines in service. Load one on the Data page.")
    st.stop()
for key, value in DEFAULTS.items():
    st.session_state.setdefault(key, value)
if st.session_state["plan_datasets"] is None:
    st.session_state["plan_datasets"] = names
st.session_state["plan_datasets"] = [n for n in st.session_state["plan_datasets"] if n in names]
for key in ("plan_datasets", "plan_weeks", "plan_slots", "plan_cost_failure", "plan_cost_removal", "plan_cost_life"):
    ui.kept(key)
if any(n not in names for n in st.session_state["_plan_datasets"]):
    st.session_state["_plan_datasets"] = st.session_state["plan_datasets"]

chosen = st.multiselect("Datasets", names, key="_plan_datasets", format_func=lambda n: f"{n} ({roles[n]})")
st.session_state["plan_datasets"] = chosen
if not chosen:
    st.info("Choose at least one dataset to plan its engines.")
    st.stop()

c = st.columns(5)
horizon = c[0].number_input("Horizon (weeks)", min_value=1, max_value=MAX_HORIZON, step=1, key="_plan_weeks")
slots = c[1].number_input("Shop slots per week", min_value=0, max_value=100_000, step=1, key="_plan_slots")
failure = c[2].number_input("Unscheduled failure ($)", min_value=0, step=1_000, key="_plan_cost_failure")
removal = c[3].number_input("Planned removal ($)", min_value=0, step=500, key="_plan_cost_removal")
life = c[4].number_input("Life given up ($ per cycle)", min_value=0.0, step=1.0, key="_plan_cost_life",
                         help="What each cycle of life a removal gives up costs: the next removal comes that much "
                              "sooner. The default spreads a removal's cost over a typical life of about 200 cycles.")
st.session_state.update(plan_weeks=horizon, plan_slots=slots, plan_cost_failure=failure, plan_cost_removal=removal,
                        plan_cost_life=life)

stamp = store.stamp()
try:
    stored = stored_utilisation(stamp)
except UserError as err:
    ui.show_error(err)
    st.stop()
kept = st.session_state["plan_utilisation"] or {}
current = {n: float(kept.get(n, stored.get(n, weeks.DEFAULT_CYCLES_PER_DAY))) for n in chosen}
with st.expander("Utilisation: cycles per day of each dataset"):
    edited = st.data_editor(
        pd.DataFrame({"dataset": list(current), "cycles_per_day": list(current.values())}),
        key="plan_utilisation_editor", hide_index=True, disabled=["dataset"], width="stretch",
        column_config={
            "dataset": st.column_config.TextColumn("dataset"),
            "cycles_per_day": st.column_config.NumberColumn("cycles per day", min_value=0.01,
                                                            max_value=weeks.MAX_CYCLES_PER_DAY, step=0.1,
                                                            format="%.2f", required=True),
        })
    current = {str(d): float(v) for d, v in zip(edited["dataset"], edited["cycles_per_day"], strict=True)}
    st.session_state["plan_utilisation"] = {**kept, **current}
    st.caption(f"A dataset nobody set flies {weeks.DEFAULT_CYCLES_PER_DAY:g} cycles a day. Changes here plan this "
               "session; saving them makes them every user's default.")
    stored_own = stored_engine_utilisation(stamp)
    own = st.data_editor(
        pd.DataFrame([(d, e, v) for (d, e), v in stored_own.items() if d in chosen],
                     columns=["dataset", "engine", "cycles_per_day"]),
        key="plan_engine_utilisation_editor", hide_index=True, num_rows="dynamic", width="stretch",
        column_config={
            "dataset": st.column_config.SelectboxColumn("dataset", options=chosen, required=True),
            "engine": st.column_config.TextColumn("engine", required=True),
            "cycles_per_day": st.column_config.NumberColumn("cycles per day", min_value=0.01,
                                                            max_value=weeks.MAX_CYCLES_PER_DAY, step=0.1,
                                                            format="%.2f", required=True),
        })
    own_rows = [(str(d), str(e), float(v)) for d, e, v in own[["dataset", "engine", "cycles_per_day"]].itertuples(
        index=False) if isinstance(d, str) and isinstance(e, str) and e.strip() and pd.notna(v)]
    st.caption("Engines that fly more or less than their dataset: add a row with the engine's own cycles per day "
               "(C-MAPSS readings carry cycles, not dates). Rows here plan this page; saving them keeps them.")
    if access.can("load"):
        if st.button("Save as the datasets' and engines' utilisation", key="plan_save_utilisation") \
                and access.permit("load"):
            try:
                found = access.identity()
                who = found[0] if found else "dashboard"
                utilisation.save(current, who)
                listed = {(d, e): v for d, e, v in own_rows}
                gone = {key: None for key in stored_own if key[0] in chosen and key not in listed}
                utilisation.save_engines({**gone, **listed}, who)
                st.success("Utilisation saved.", icon=":material/check:")
            except UserError as err:
                ui.show_error(err)
    else:
        access.note("load")

try:
    request = planner.PlanRequest(
        weeks=int(horizon), slots=(int(slots),), start=date.today(),
        costs=planner.PlanCosts(failure=float(failure), removal=float(removal), life_per_cycle=float(life)),
        utilisation=tuple(sorted(current.items())), engine_utilisation=tuple(own_rows))
    plan = plan_view(plan_inputs(stamp, version), version, request, tuple(chosen))
except UserError as err:
    ui.show_error(err)
    st.stop()

meta = plan.meta
if meta["stale"]:
    st.info(f"{meta['stale']:,} engine(s) have readings newer than their stored score of model v{version}, or no score "
            "yet: they are planned on their last stored score, or not at all. The Fleet page scores them.",
            icon=":material/hourglass_top:")
if not meta["engines"]:
    st.info("No engine in service has a stored score of the serving model yet: open the Fleet page, which scores "
            "them in the background, then come back.")
    st.stop()

costs = plan.policies.set_index("policy")["expected_cost"]
best_baseline = costs.drop("Plan").min()
k = st.columns(5)
k[0].metric("Engines in service", f"{meta['engines']:,}")
k[1].metric("Planned within the horizon", f"{meta['planned']:,}")
k[2].metric("Expected cost of the plan", f"${costs['Plan']:,.0f}")
k[3].metric("Saving vs the best baseline", f"${best_baseline - costs['Plan']:,.0f}")
k[4].metric("Expected failures within the horizon",
            f"{plan.policies.set_index('policy').at['Plan', 'expected_failures']:.1f}")
st.caption(f"Model v{version}; RUL distributions from its {meta['distribution']}; solved by {meta['method']} in "
           f"{meta['solve_seconds']:.2f} s. Week 0 is the rest of this week; an engine planned in a week is removed "
           "by its end.")
if meta["overbooked_weeks"]:
    st.warning(f"Engines scheduled before already exceed the slots of week(s) "
               f"{', '.join(str(w) for w in meta['overbooked_weeks'])}.")

left, right = st.columns(2)
left.plotly_chart(plan_charts.calendar(plan.weeks), key="plan_calendar")
right.plotly_chart(plan_charts.removals(plan.weeks), key="plan_removals")
st.caption("Expected removals: engines planned that week that have not failed first, plus engines failing that "
           "week; the band holds 90 % of outcomes if failures happen as the distributions say.")

st.subheader("Expected cost against the baselines")
chart_col, table_col = st.columns([3, 2])
chart_col.plotly_chart(plan_charts.policy_costs(plan.policies), key="plan_costs")
table_col.dataframe(plan.policies, hide_index=True, width="stretch", key="plan_policies", column_config={
    "policy": st.column_config.TextColumn("policy", width="large"),
    "expected_cost": st.column_config.NumberColumn("expected cost", format="dollar"),
    "planned": st.column_config.NumberColumn("engines planned"),
    "expected_failures": st.column_config.NumberColumn("expected failures", format="%.1f"),
})
table_col.caption("Each baseline fills the same slots in its own order: a fixed RUL threshold (the best of 0 to 125 "
                  "cycles here), \"Inspect HIGH\" (HIGH risk first), or nothing. Costs count each engine's failure or "
                  "removal (an engine not planned is taken as removed the week after the horizon) and the life "
                  "removals give up until then, expected under the model's distributions.")

st.subheader("Engines")
show_col, page_col = st.columns([3, 1], vertical_alignment="bottom")
show = show_col.radio("Show", ["Planned engines", "All engines"], horizontal=True, key="plan_show")
table = plan.engines if show == "All engines" else plan.engines[plan.engines["week"].notna()]
pages_of_rows = max(1, -(-len(table) // TABLE_PAGE_ROWS))
if pages_of_rows > 1:
    shown_page = page_col.number_input(f"Page (of {pages_of_rows:,})", min_value=1, max_value=pages_of_rows, step=1,
                                       key="plan_table_page")
    first_row, total = (int(shown_page) - 1) * TABLE_PAGE_ROWS, len(table)
    table = table.iloc[first_row:first_row + TABLE_PAGE_ROWS]
    st.caption(f"Rows {first_row + 1:,}-{first_row + len(table):,} of {total:,}, in plan order (week, then most "
               "likely to fail first); the CSV holds every engine.")
links = [engine_url(d, e) for d, e in zip(table["dataset"], table["engine"], strict=True)]
st.dataframe(
    table.assign(link=links), key="plan_table", hide_index=True, width="stretch", height=360,
    column_order=["week", "week_start", "engine", "dataset", "p_fail_before", "expected_cost", "rul", "p_fail_30",
                  "risk", "status", "reason", "link"],
    column_config={
        "week": st.column_config.NumberColumn("week", format="%d"),
        "week_start": st.column_config.TextColumn("from"),
        "engine": st.column_config.TextColumn("engine"),
        "dataset": st.column_config.TextColumn("dataset"),
        "p_fail_before": st.column_config.ProgressColumn("P(fail before its slot)", format="percent", min_value=0.0,
                                                         max_value=1.0, help="Not planned: before the horizon ends."),
        "expected_cost": st.column_config.NumberColumn("expected cost", format="dollar"),
        "rul": st.column_config.NumberColumn("predicted RUL", format="%.0f"),
        "p_fail_30": st.column_config.NumberColumn("P(fail ≤ 30 cycles)", format="percent"),
        "risk": st.column_config.TextColumn("risk"),
        "status": st.column_config.TextColumn("status"),
        "reason": st.column_config.TextColumn("reason", width="large"),
        "link": st.column_config.LinkColumn("link", display_text="open"),
    },
)
if table.empty:
    st.caption("No engine is planned within the horizon.")
else:
    offered = table.head(PICK_LIMIT)
    labels = [f"{e} ({d})" for d, e in zip(offered["dataset"], offered["engine"], strict=True)]
    picked = st.selectbox("RUL distribution of", range(len(labels)), format_func=labels.__getitem__,
                          key="plan_pick")
    row = offered.iloc[int(picked or 0)]
    distribution = RulDistribution.from_conformal(ensemble.conformal)
    per_day = float(row["cycles_per_day"])
    days = weeks.days_to_slots(date.fromisoformat(meta["request"]["start"]), int(horizon))
    grid = np.linspace(0.0, max(float(days[-1]) * per_day, ensemble.cap * 1.1), 200)
    slot = None if pd.isna(row["week"]) else float(days[int(row["week"])]) * per_day
    st.plotly_chart(plan_charts.engine_distribution(grid, distribution.cdf(np.array([row["rul"]]), grid)[0], slot,
                                                    labels[int(picked or 0)], ensemble.cap), key="plan_distribution")

csv_col, week_col, package_col = st.columns([1, 1, 1], vertical_alignment="bottom")
csv_col.download_button("Download the plan (CSV)", lambda: exports.plan_csv(plan, version), file_name="plan.csv",
                        mime="text/csv", key="plan_csv", icon=":material/download:")
planned_weeks = sorted(int(w) for w in plan.engines["week"].dropna().unique())
if planned_weeks:
    package_week = week_col.selectbox("Work package of week", planned_weeks, key="plan_package_week")
    shown = list(ensemble.pipeline.sensors[:WORK_PACKAGE_SENSORS])

    def work_package() -> str:
        """The week's printable work package, with each engine's explanation (read when the button is pressed)."""
        why = service.week_explanations(plan, package_week, ensemble, ui.explainer(version, config.paths().mlflow_uri))
        return exports.work_package_html(plan, package_week, service.week_readings(plan, package_week), version, shown,
                                         why)

    package_col.download_button("Download the work package (HTML)", work_package,
                                file_name=f"work-package-week-{package_week}.html", mime="text/html",
                                key="plan_package", icon=":material/print:")

st.subheader("Accept the plan")
if access.can("record_outcome"):
    if st.button("Accept this plan", key="plan_accept") and access.permit("record_outcome"):
        try:
            found = access.identity()
            plan_id = accepted.accept(plan, version, found[0] if found else "dashboard")
            st.success(f"Stored as accepted plan {plan_id}, with who accepted it, when, and model v{version}.",
                       icon=":material/check:")
        except UserError as err:
            ui.show_error(err)
else:
    access.note("record_outcome")
try:
    recent = recent_plans(store.stamp())
except UserError as err:
    ui.show_error(err)
    recent = pd.DataFrame()
if not recent.empty:
    st.dataframe(recent, hide_index=True, width="stretch", key="plan_recent", column_config={
        "accepted_by": st.column_config.TextColumn("accepted by"),
        "expected_cost": st.column_config.NumberColumn("expected cost", format="dollar"),
    })
