"""Explain: what drives the model over the engines of a dataset in service.

Mean |SHAP| per input over a seeded sample of the dataset's engines (XGBoost, the LSTM and their blend, the
served RUL), and a dependence plot of any input (its value against its effect on the RUL) coloured by operating
regime. The explanation is computed in the background after scoring and stored by model version
(:mod:`core.serving.fleet_explain`); this page only reads it, and starts the job when none is stored or the
readings changed since.
"""

from __future__ import annotations

import streamlit as st

from core.data import sensors
from pages import explain_charts, explain_view, ui

IN_SERVICE = ("fleet", "evaluation")

ui.init_session()  # idempotent; keeps the page whole even when run outside app.py
st.title("Fleet explanations")
st.caption("What drives the model's predicted RUL over a dataset's engines, the fleet-wide view of the Engine "
           "page's per-engine explanation: mean |SHAP| per input for each model and their blend, and how each "
           "input's value moves the prediction, by operating regime.")

version, ensemble, listing = ui.model_and_data()
roles = listing.set_index("name")["role"]
names = [n for n in listing["name"] if roles[n] in IN_SERVICE]
if not names:
    st.info("No fleet or evaluation dataset is loaded: fleet explanations cover engines in service. Load one on "
            "the Data page.")
    st.stop()
if st.session_state.get("explain_dataset") not in names:
    st.session_state["explain_dataset"] = names[0]
dataset = st.selectbox("Dataset", names, key="explain_dataset", format_func=lambda n: f"{n} ({roles[n]})")

found, stale = explain_view.stored(dataset, version)
job = explain_view.refresh(version, "explain page") if found is None or stale else None
explain_view.status(job, found is not None)
if found is None:
    if job is None:
        st.info("No fleet explanation is stored for this dataset and model yet.")
    st.stop()

st.caption(explain_view.sample_sentence(found))
table = found.importance()
effects = float(found.points["combined"].sum()) / found.sampled
st.markdown(f"Over these engines the mean predicted RUL, **{found.rul:.1f} cycles**, is the fleet-average start "
            f"({found.base:.1f}) plus the inputs' mean effects ({effects:+.1f}) plus the approximation "
            f"({found.approximation:+.1f}: clipping to 0–{ensemble.cap:.0f} cycles and the LSTM's sampling error).")

left, right = st.columns([2, 3])
left.plotly_chart(explain_charts.importance(table), key="explain_importance")
left.caption(f"Each member's bars are its own RUL attributions; the blend weighs them as the ensemble does "
             f"(XGBoost {found.weight_xgb:.2f}, LSTM {1 - found.weight_xgb:.2f}) and is what the served RUL moves by.")

inputs = table["input"].tolist()
if st.session_state.get("explain_input") not in inputs:
    st.session_state["explain_input"] = inputs[0]
pick = right.columns([3, 2], vertical_alignment="bottom")
chosen = pick[0].selectbox("Input", inputs, key="explain_input",
                           format_func=lambda n: "engine age" if n == "age" else sensors.label(n))
scale = pick[1].radio("Value", ["raw reading", "regime-normalised"], key="explain_scale", horizontal=True,
                      disabled=chosen == "age",
                      help="Raw: the engine's last reading, whose level differs by operating regime. "
                           "Regime-normalised: its 5-cycle mean in training σ from its regime's mean (what the "
                           "models see).")
right.plotly_chart(explain_charts.dependence(found.points, chosen, normalised=scale == "regime-normalised"),
                   key="explain_dependence")
right.caption(f"One point per sampled engine ({found.sampled:,}), at its last cycle, coloured by the operating "
              "regime it ran in: a point above zero is an input that raises that engine's predicted RUL.")
