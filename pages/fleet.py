"""Fleet: every engine's predicted RUL, interval, failure probability and risk; filters, KPIs, costs, CSV."""

from __future__ import annotations

import streamlit as st

from core import config
from core.errors import UserError
from core.serving import fleet
from models.ensemble import RISK_LEVELS
from pages import charts, ui

ui.init_session()  # idempotent; keeps the page whole even when run outside app.py
st.title("Fleet")
st.caption(
    "Each engine at its last recorded cycle: predicted remaining useful life (cycles) with its interval, "
    "the probability of failing within 30 cycles, and the risk level. Select a row to open the engine."
)

version, ensemble, listing = ui.model_and_data()

names = listing["name"].tolist()
tests = listing.loc[listing["split"] == "test", "name"].tolist()
if st.session_state["fleet_datasets"] is None:
    st.session_state["fleet_datasets"] = tests or names
st.session_state["fleet_datasets"] = [n for n in st.session_state["fleet_datasets"] if n in names]
for key in ("fleet_datasets", "cost_miss", "cost_inspection"):
    ui.kept(key)
if any(n not in names for n in st.session_state["_fleet_datasets"]):
    st.session_state["_fleet_datasets"] = st.session_state["fleet_datasets"]

chosen = st.multiselect("Datasets", names, key="_fleet_datasets", help="Engines of these datasets are scored.")
st.session_state["fleet_datasets"] = chosen
if not chosen:
    st.info("Choose at least one dataset to see its engines.")
    st.stop()

engines = int(listing.loc[listing["name"].isin(chosen), "engines"].sum())
try:
    with st.spinner(f"Scoring {engines:,} engines with model v{version}…"):
        table = ui.fleet_scores(tuple(chosen), version, config.paths().mlflow_uri, ui.data_fingerprint(chosen))
except UserError as err:
    ui.show_error(err)
    st.stop()

risk_col, rul_col = st.columns(2)
risks = risk_col.multiselect("Risk level", list(reversed(RISK_LEVELS)), default=list(reversed(RISK_LEVELS)),
                             key="fleet_risks")
cap = float(ensemble.cap)
rul_range = rul_col.slider("Predicted RUL (cycles)", 0.0, cap, (0.0, cap), step=1.0, key="fleet_rul")
shown = fleet.filter_fleet(table, risks=risks, rul_range=rul_range)

counts = fleet.kpis(shown)
k = st.columns(5)
k[0].metric("Engines", counts["engines"])
k[1].metric("HIGH risk", counts["HIGH"])
k[2].metric("MEDIUM risk", counts["MEDIUM"])
k[3].metric("LOW risk", counts["LOW"])
k[4].metric("Model", f"v{version}")

if shown.empty:
    st.info("No engine matches these filters.")
    st.stop()

st.plotly_chart(charts.fleet_rul(shown), key="fleet_chart")

event = st.dataframe(
    shown,
    key="fleet_table",
    on_select="rerun",
    selection_mode="single-row",
    hide_index=True,
    width="stretch",
    height=360,
    column_config={
        "dataset": st.column_config.TextColumn("dataset"),
        "unit": st.column_config.NumberColumn("unit", format="%d"),
        "cycle": st.column_config.NumberColumn("last cycle", format="%d"),
        "rul": st.column_config.NumberColumn("predicted RUL", format="%.1f"),
        "rul_low": st.column_config.NumberColumn("RUL low", format="%.1f"),
        "rul_high": st.column_config.NumberColumn("RUL high", format="%.1f"),
        "p_fail_30": st.column_config.ProgressColumn("P(fail ≤ 30 cycles)", format="percent", min_value=0.0,
                                                     max_value=1.0),
        "risk": st.column_config.TextColumn("risk"),
        "true_rul": st.column_config.NumberColumn("true RUL", format="%.0f"),
    },
)
if event.selection.rows:
    picked = shown.iloc[event.selection.rows[0]]
    st.session_state["engine"] = (str(picked["dataset"]), int(picked["unit"]))
    st.switch_page("pages/engine.py")

labels = [f"{d} #{u}" for d, u in zip(shown["dataset"], shown["unit"])]
pick_col, open_col, csv_col = st.columns([3, 1, 1], vertical_alignment="bottom")
picked_label = pick_col.selectbox("Or open an engine", labels, index=None, key="fleet_open",
                                  placeholder="dataset #unit")
if open_col.button("Open engine", key="fleet_open_button", disabled=picked_label is None):
    row = shown.iloc[labels.index(picked_label)]
    st.session_state["engine"] = (str(row["dataset"]), int(row["unit"]))
    st.switch_page("pages/engine.py")
csv_col.download_button("Download CSV", shown.to_csv(index=False).encode(), file_name="fleet_rul.csv",
                        mime="text/csv", key="fleet_csv", icon=":material/download:")

st.subheader("Cost of acting on the risk levels")
miss_col, insp_col = st.columns(2)
miss = miss_col.number_input("Missed failure ($)", min_value=0, step=1_000, key="_cost_miss")
inspection = insp_col.number_input("Needless inspection ($)", min_value=0, step=500, key="_cost_inspection")
st.session_state["cost_miss"], st.session_state["cost_inspection"] = miss, inspection
policies = fleet.policy_costs(shown, fleet.Costs(miss=float(miss), inspection=float(inspection)))
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
st.caption(
    f"{fleet.cost_basis(shown)} A missed failure is an engine that fails within 30 cycles without being "
    "inspected; a needless inspection is an inspected engine that would not have failed. Where the true RUL "
    "is unknown, the predicted probability of failure gives expected counts."
)
