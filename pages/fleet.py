"""Fleet: a triage list of the engines in service (risk, P(fail), RUL), search, filters, KPIs, links, costs, CSV.

The page never scores: it reads the champion's stored predictions with DuckDB (filters, order, pages and
counts in SQL). The order the user chooses (the sort controls, or a click on a column's header) sorts every
filtered engine before the table is split into pages, and is kept for the session. Engines whose scores are missing or older than their readings are scored by the background
scoring job (:mod:`core.operations.scoring_job`), which this page starts when it finds them and whose progress
it shows until the job ends.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from core.data import score_queries, store
from core.errors import UserError
from core.operations import jobs, scoring_job
from core.serving import fleet
from models.ensemble import RISK_LEVELS
from pages import charts, ui

IN_SERVICE = ("fleet", "evaluation")  # roles whose datasets are chosen by default: engines in service
PAGE_ROWS = (50, 100, 250)  # choices of engines per page of the table
CHART_SAMPLE = 500  # engines drawn in the chart at most (a fixed sample of the filtered engines)
EXPERIENCE_LABELS = {"all": "all engines", "outside": "out of experience only", "within": "within experience only"}
SORT_STATE = {"fleet_sort_column": score_queries.TRIAGE.column, "fleet_sort_descending": score_queries.TRIAGE.descending}
"""The session's chosen order (kept across page switches), riskiest first until the user chooses another."""


@st.cache_data(show_spinner=False, max_entries=64)
def fleet_view(stamp: tuple, version: int, shown: score_queries.FleetFilter, order: score_queries.FleetSort,
               page: int, size: int) -> tuple[int, dict, int, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stale count, counts, pages, the table's page (every filtered engine sorted by `order`, then paged), the
    chart's sample and the cost inputs of a filter, kept while the store's file `stamp`
    (:func:`core.data.store.stamp`) is unchanged: revisits and reruns that change nothing the queries read skip
    them."""
    with store.connect(read_only=True) as con:
        stale = score_queries.stale_count(con, version, list(shown.datasets))
        counts = score_queries.fleet_summary(con, version, shown)
        pages = max(1, -(-counts["engines"] // size))
        rows = score_queries.fleet_page(con, version, shown, (min(page, pages) - 1) * size, size, order)
        sample = score_queries.fleet_sample(con, version, shown, CHART_SAMPLE)
        costs_input = score_queries.fleet_costs_input(con, version, shown)
    return stale, counts, pages, rows, sample, costs_input


def engine_url(dataset: str, engine: str) -> str:
    """The Engine page's shareable address for one engine."""
    return "/engine?" + urlencode({"dataset": dataset, "engine": engine})


def open_engine(dataset: str, engine: str) -> None:
    """Go to the Engine page showing `engine` of `dataset` (its address carries both, so it can be shared)."""
    st.session_state["engine"] = (dataset, engine)
    st.switch_page("pages/engine.py", query_params={"dataset": dataset, "engine": engine})


@st.fragment(run_every="1s")
def scoring_progress(job_id: str) -> None:
    """The scoring job's progress, refreshed every second; the page reruns once it has ended.

    Declared only while a scoring job runs, so an idle page costs nothing.
    """
    try:
        job = jobs.get(job_id)
    except UserError as err:
        ui.show_error(err)
        return
    if job.finished:
        st.rerun(scope="app")
    st.progress(min(max(job.progress, 0.0), 1.0),
                text=f"Scoring in the background (job {job.id}): {job.log_tail[-1] if job.log_tail else 'starting'}")


def apply_order(order: score_queries.FleetSort) -> None:
    """Put `order` in force (the session's value and its two widgets) and go back to the first page.

    Called from widget callbacks, which run before the page draws, so the widgets may be set."""
    st.session_state["fleet_sort_column"] = st.session_state["_fleet_sort_column"] = order.column
    st.session_state["fleet_sort_descending"] = st.session_state["_fleet_sort_descending"] = order.descending
    st.session_state["fleet_page"] = 1


def column_chosen() -> None:
    """The sort column was changed: sort by it in the direction it starts with (riskiest, lowest RUL...)."""
    column = st.session_state["_fleet_sort_column"]
    apply_order(score_queries.FleetSort(column, fleet.FIRST_DESCENDING[column]))


def direction_chosen() -> None:
    """The sort direction was changed."""
    apply_order(score_queries.FleetSort(st.session_state["fleet_sort_column"],
                                        bool(st.session_state["_fleet_sort_descending"])))


def header_clicked(table_key: str, order: score_queries.FleetSort) -> None:
    """A click on a column header of the table drawn under `table_key` (sorted by `order`) selects that column:
    sort every filtered engine by it (:func:`core.serving.fleet.header_sort`; a column that cannot be sorted
    leaves the order). Each click is used once: the count in the table's key gives the next draw a fresh table,
    with no column left selected."""
    columns = st.session_state[table_key].selection.columns
    if columns:
        st.session_state["fleet_header_clicks"] += 1
        apply_order(fleet.header_sort(order, columns[0]))


def scoring_status(version: int, stale: int) -> None:
    """Say whether the stored scores are current; start the scoring job when some are missing or stale."""
    if not stale:
        return
    last = scoring_job.latest()
    if last is not None and last.state == "failed" and not st.session_state.get("fleet_rescore"):
        st.error(f"Scoring stopped with an error; {stale:,} engine(s) keep older or no scores. The error:",
                 icon=":material/error:")
        st.text(last.error)  # the job's own sentence may quote dataset names: text, never Markdown
        st.button("Score again", key="fleet_rescore")
        return
    job = scoring_job.start(created_by="fleet page")
    st.info(f"{stale:,} engine(s) have readings newer than their stored score of model v{version} (or none yet); "
            "they are being scored in the background, and the table shows the scores stored so far.",
            icon=":material/hourglass_top:")
    if job is not None:
        scoring_progress(job.id)


ui.init_session()  # idempotent; keeps the page whole even when run outside app.py
st.title("Fleet")
st.caption(
    "Triage list of the engines in service, each at its last recorded cycle: risk level, probability of "
    "failing within 30 cycles, predicted remaining useful life (cycles) with its interval. Riskiest first "
    "unless you choose another order (the sort controls above the table, or a click on a column's header: "
    "either sorts every engine the filters keep, not just the page shown); select a row (or follow its link) "
    "to open the engine."
)

version, ensemble, listing = ui.model_and_data()

roles = listing.set_index("name")["role"]
names = [n for n in listing["name"] if roles[n] in IN_SERVICE]
if not names:
    st.info("No fleet or evaluation dataset is loaded: the fleet lists engines in service. Load one on the Data "
            "page.")
    st.stop()
if st.session_state["fleet_datasets"] is None:
    st.session_state["fleet_datasets"] = names
st.session_state["fleet_datasets"] = [n for n in st.session_state["fleet_datasets"] if n in names]
for key in ("fleet_datasets", "cost_miss", "cost_inspection"):
    ui.kept(key)
if any(n not in names for n in st.session_state["_fleet_datasets"]):
    st.session_state["_fleet_datasets"] = st.session_state["fleet_datasets"]

chosen = st.multiselect("Datasets", names, key="_fleet_datasets", format_func=lambda n: f"{n} ({roles[n]})",
                        help="Fleet and evaluation datasets: they hold the engines in service, which the "
                             "background scoring job keeps scored.")
st.session_state["fleet_datasets"] = chosen
if not chosen:
    st.info("Choose at least one dataset to see its engines.")
    st.stop()

search_col, risk_col, rul_col, experience_col = st.columns([2, 2, 3, 2])
text = search_col.text_input("Search engine id", key="fleet_search", placeholder="e.g. ESN-70")
risks = risk_col.multiselect("Risk level", list(reversed(RISK_LEVELS)), default=list(reversed(RISK_LEVELS)),
                             key="fleet_risks")
cap = float(ensemble.cap)
rul_range = rul_col.slider("Predicted RUL (cycles)", 0.0, cap, (0.0, cap), step=1.0, key="fleet_rul")
experience = experience_col.selectbox(
    "Model's experience", score_queries.EXPERIENCE, key="fleet_experience", format_func=EXPERIENCE_LABELS.get,
    help="Out of experience: the engine ran in an operating regime the model never saw in training, or its "
         "sensors read far outside the training range; its prediction is an extrapolation.")
shown = score_queries.FleetFilter(datasets=tuple(chosen), risks=tuple(risks), rul_range=rul_range, search=text,
                                  experience=experience)
size = int(st.session_state.get("fleet_page_rows", PAGE_ROWS[1]))  # the pager is drawn below; one read for all
page = int(st.session_state.get("fleet_page", 1))
for key, value in SORT_STATE.items():
    st.session_state.setdefault(key, value)
    ui.kept(key)
try:
    order = score_queries.FleetSort(st.session_state["fleet_sort_column"], st.session_state["fleet_sort_descending"])
    stale, counts, pages, rows, sample, costs_input = fleet_view(store.stamp(), version, shown, order, page, size)
    scoring_status(version, stale)
except UserError as err:
    ui.show_error(err)
    st.stop()

k = st.columns(6)
k[0].metric("Engines", counts["engines"])
k[1].metric("HIGH risk", counts["HIGH"])
k[2].metric("MEDIUM risk", counts["MEDIUM"])
k[3].metric("LOW risk", counts["LOW"])
k[4].metric("Out of experience", counts["ood"],
            help="Engines that ran outside what the model was trained on: the table's 'out of experience' "
                 "column, and the reason in its last column.")
k[5].metric("Model", f"v{version}")
scored_at = "" if counts["scored_at"] is None else f"{counts['scored_at']:%Y-%m-%d %H:%M:%S} UTC"
st.caption(f"{fleet.risk_rule(ensemble.thresholds)} {fleet.rul_cap_note(cap)} Scores stored by model v{version}, "
           f"newest {scored_at or 'never'}; engines closed by a failure or removal have left service and are not "
           "listed.")

if not counts["engines"]:
    if stale and not text.strip():
        st.info("No score is stored for these engines yet: the table appears when the scoring job has finished.")
    else:
        st.info("No engine matches these filters." if text.strip() == ""
                else "No engine id contains the text in the search box.")
    st.stop()

st.plotly_chart(charts.fleet_rul(sample), key="fleet_chart")
if counts["engines"] > len(sample):
    st.caption(f"The chart shows a fixed sample of {len(sample):,} of the {counts['engines']:,} engines (the same "
               "engines on every visit); the counts above and the table below cover them all.")

sort_col, direction_col, size_col, page_col = st.columns([2, 3, 1, 1], vertical_alignment="bottom")
# Each control's own default repeats the session's value: on a cold deep link the browser may draw a control before
# the value set in session state reaches it, and would otherwise show (and send back) the control's first option.
sort_col.selectbox("Sort every engine by", list(score_queries.SORT_KEYS), key="_fleet_sort_column",
                   index=list(score_queries.SORT_KEYS).index(order.column), format_func=fleet.SORT_LABELS.get,
                   on_change=column_chosen,
                   help="Orders all the engines the filters keep, then splits them into pages.")
direction_col.segmented_control("Order", [True, False], key="_fleet_sort_descending", required=True,
                                default=order.descending, on_change=direction_chosen,
                                format_func=lambda descending: fleet.direction_words(order.column, descending))
size_col.selectbox("Rows per page", PAGE_ROWS, index=1, key="fleet_page_rows")
if page > pages:
    st.session_state["fleet_page"] = pages  # the filters left fewer pages than the one shown before
page_col.number_input("Page", min_value=1, max_value=pages, step=1, key="fleet_page")
st.caption(fleet.order_caption(order, min(page, pages), pages))

links = [engine_url(d, e) for d, e in zip(rows["dataset"], rows["engine"])]
# Column selection switches off the grid's own header sort (it would order only the rows of this page): a header
# click selects the column instead, and header_clicked sorts the whole fleet by it in SQL.
table_key = f"fleet_table_{st.session_state.setdefault('fleet_header_clicks', 0)}"
event = st.dataframe(
    rows.assign(link=links),
    key=table_key,
    on_select=lambda: header_clicked(table_key, order),
    selection_mode=["single-row", "single-column"],
    hide_index=True,
    width="stretch",
    height=360,
    column_order=["risk", "p_fail_30", "rul", "rul_low", "rul_high", "ood", "engine", "dataset", "cycle", "true_rul",
                  "link", "ood_reason"],
    column_config={
        "risk": st.column_config.TextColumn("risk"),
        "p_fail_30": st.column_config.ProgressColumn("P(fail ≤ 30 cycles)", format="percent", min_value=0.0,
                                                     max_value=1.0),
        "rul": st.column_config.NumberColumn("predicted RUL", format="%.0f",
                                             help=f"Cycles; capped at {cap:.0f}."),
        "rul_low": st.column_config.NumberColumn("RUL low", format="%.0f"),
        "rul_high": st.column_config.NumberColumn("RUL high", format="%.0f"),
        "engine": st.column_config.TextColumn("engine"),
        "dataset": st.column_config.TextColumn("dataset"),
        "cycle": st.column_config.NumberColumn("last cycle", format="%d"),
        "true_rul": st.column_config.NumberColumn("true RUL", format="%.0f",
                                                  help="Known only for evaluation datasets."),
        "link": st.column_config.LinkColumn("link", display_text="open", help="A shareable link to this engine."),
        "ood": st.column_config.CheckboxColumn("out of experience",
                                               help="The engine ran outside what the model was trained on."),
        "ood_reason": st.column_config.TextColumn("why out of experience", width="large"),
    },
)
if event.selection.rows:
    picked = rows.iloc[event.selection.rows[0]]
    open_engine(str(picked["dataset"]), str(picked["engine"]))

labels = [f"{e} ({d})" for d, e in zip(rows["dataset"], rows["engine"])]
pick_col, open_col, csv_col = st.columns([3, 1, 1], vertical_alignment="bottom")
picked_label = pick_col.selectbox("Or open an engine of this page", labels, index=None, key="fleet_open",
                                  placeholder="engine id (dataset)")
if open_col.button("Open engine", key="fleet_open_button", disabled=picked_label is None):
    row = rows.iloc[labels.index(picked_label)]
    open_engine(str(row["dataset"]), str(row["engine"]))


def csv_download() -> bytes:
    """Every engine the filters keep, in the order in force, as CSV (built when the button is pressed, not on every
    rerun; formula-like cells neutralised by :func:`core.serving.fleet.csv_table`)."""
    with store.connect(read_only=True) as con:
        return fleet.csv_table(score_queries.fleet_all(con, version, shown, order), version, scored_at)


csv_col.download_button("Download CSV", csv_download, file_name="fleet_rul.csv", mime="text/csv", key="fleet_csv",
                        icon=":material/download:", on_click="ignore")  # a download changes nothing on the page

st.subheader("Cost of acting on the risk levels")
miss_col, insp_col = st.columns(2)
miss = miss_col.number_input("Missed failure ($)", min_value=0, step=1_000, key="_cost_miss",
                             value=int(st.session_state["cost_miss"]))  # the session's value: see the sort controls
inspection = insp_col.number_input("Needless inspection ($)", min_value=0, step=500, key="_cost_inspection",
                                   value=int(st.session_state["cost_inspection"]))
st.session_state["cost_miss"], st.session_state["cost_inspection"] = miss, inspection
policies = fleet.policy_costs(costs_input, fleet.Costs(miss=float(miss), inspection=float(inspection)))
chart_col, table_col = st.columns([2, 3])
chart_col.plotly_chart(charts.policy_costs(policies), key="fleet_costs")
table_col.dataframe(
    policies, hide_index=True, width="stretch",
    column_config={
        "missed_failures": st.column_config.NumberColumn("missed failures", format="%.1f"),
        "needless_inspections": st.column_config.NumberColumn("needless inspections", format="%.1f"),
        "cost": st.column_config.NumberColumn("cost", format="dollar"),
        "saving": st.column_config.NumberColumn("saving vs doing nothing", format="dollar"),
    },
)
best = policies.sort_values("cost").iloc[0]
table_col.write(f"Cheapest here: **{best['policy']}** at ${best['cost']:,.0f}.")
st.page_link("pages/plan.py", label="Plan which engines to remove in which week, under shop capacity",
             icon=":material/event:")
st.caption(
    f"{fleet.cost_basis(costs_input)} A missed failure is an engine that fails within 30 cycles without being "
    "inspected; a needless inspection is an inspected engine that would not have failed. Where the true RUL "
    "is unknown, the predicted probability of failure gives expected counts."
)
