"""Chart builders return plotly figures with the traces the pages rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.data.sensors import feature_label
from models.explanation import Breakdown
from pages import charts, drift_charts

LINKED = '<a href="http://127.0.0.1:9449/x">ESN-1</a><b>!</b> & co'
"""A name holding the HTML that plotly draws in hover texts and legends (a link, bold)."""
LINKED_SHOWN = '&lt;a href="http://127.0.0.1:9449/x"&gt;ESN-1&lt;/a&gt;&lt;b&gt;!&lt;/b&gt; &amp; co'


def _fleet() -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": ["test_FD001"] * 4,
        "unit": [1, 2, 3, 4],
        "engine": ["ESN-1", "ESN-2", "ESN-3", "ESN-4"],
        "cycle": [100, 120, 90, 150],
        "rul": [80.0, 12.0, 50.0, 30.0],
        "rul_low": [60.0, 5.0, 30.0, 20.0],
        "rul_high": [110.0, 25.0, 70.0, 45.0],
        "p_fail_30": [0.05, 0.9, 0.2, 0.4],
        "risk": ["LOW", "HIGH", "LOW", "MEDIUM"],
        "true_rul": [75.0, np.nan, 55.0, 28.0],
    })


def test_fleet_chart_has_one_trace_per_risk_level_with_intervals_and_true_rul() -> None:
    fig = charts.fleet_rul(_fleet())
    assert isinstance(fig, go.Figure)
    names = [t.name for t in fig.data]
    assert names == ["HIGH", "MEDIUM", "LOW", "true RUL"]
    low = fig.data[2]
    assert list(low.y) == [50.0, 80.0]  # sorted by predicted RUL
    assert list(low.error_y.array) == [20.0, 30.0] and list(low.error_y.arrayminus) == [20.0, 20.0]
    assert low.marker.color == charts.RISK_COLOURS["LOW"]
    assert len(fig.data[3].y) == 3  # engines with a known true RUL
    assert [row[0] for row in low.customdata] == ["ESN-3 (test_FD001)", "ESN-1 (test_FD001)"]


def test_fleet_chart_shows_engine_and_dataset_names_as_text_not_html() -> None:
    fig = charts.fleet_rul(_fleet().assign(engine=LINKED, dataset="<i>fleet</i>"))
    hovered = {row[0] for trace in fig.data for row in trace.customdata}
    assert hovered == {f"{LINKED_SHOWN} (&lt;i&gt;fleet&lt;/i&gt;)"}


def test_distribution_legends_show_dataset_names_as_text_not_html() -> None:
    fig = drift_charts.distributions(np.arange(10.0), np.arange(10.0) + 1, "sensor_11", LINKED, "<b>current</b>")
    assert [t.name for t in fig.data] == [f"{LINKED_SHOWN} (10 rows)", "&lt;b&gt;current&lt;/b&gt; (10 rows)"]


def test_fleet_chart_without_truth_has_no_true_rul_trace() -> None:
    fig = charts.fleet_rul(_fleet().assign(true_rul=np.nan, risk="LOW"))
    assert [t.name for t in fig.data] == ["LOW"]


def test_policy_cost_bars() -> None:
    costs = pd.DataFrame({"policy": ["Inspect HIGH", "Inspect HIGH and MEDIUM", "Do nothing"],
                          "cost": [52_000.0, 54_000.0, 100_000.0]})
    fig = charts.policy_costs(costs)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Bar)
    assert list(fig.data[0].x) == list(costs["policy"]) and list(fig.data[0].y) == list(costs["cost"])


def test_sensor_trends_one_line_per_sensor() -> None:
    frame = pd.DataFrame({"cycle": [1, 2, 3], "sensor_2": [1.0, 2.0, 3.0], "sensor_11": [3.0, 2.0, 1.0]})
    fig = charts.sensor_trends(frame, ["sensor_2", "sensor_11"], "Sensor readings")
    assert [t.name for t in fig.data] == ["T24 LPC outlet temperature (°R)", "Ps30 HPC static pressure (psia)"]
    assert list(fig.data[1].y) == [3.0, 2.0, 1.0]
    panels = charts.sensor_trends(frame, ["sensor_2", "sensor_11"], "Sensor readings", separate=True)
    assert [t.name for t in panels.data] == ["T24 LPC outlet temperature (°R)", "Ps30 HPC static pressure (psia)"]
    assert panels.data[0].yaxis == "y" and panels.data[1].yaxis == "y2"
    assert panels.layout.yaxis.title.text == "T24 (°R)" and panels.layout.yaxis2.title.text == "Ps30 (psia)"
    single = charts.sensor_trends(frame, ["sensor_11"], "Sensor readings")
    assert single.layout.yaxis.title.text == "Ps30 (psia)"


def test_feature_labels_name_the_sensor_its_unit_and_the_statistic() -> None:
    assert feature_label("sensor_11_slope30") == "Ps30 HPC static pressure (psia), 30-cycle slope"
    assert feature_label("sensor_11_mean10") == "Ps30 HPC static pressure (psia), 10-cycle mean"
    assert feature_label("sensor_4_std5") == "T50 LPT outlet temperature (°R), 5-cycle standard deviation"
    assert feature_label("sensor_11_last") == "Ps30 HPC static pressure (psia), last reading"
    assert feature_label("sensor_2_meanall") == "T24 LPC outlet temperature (°R), mean over the whole history"
    assert feature_label("sensor_15") == "BPR bypass ratio"
    assert feature_label("cycle") == feature_label("age") == "engine age (cycles run)"
    assert feature_label("sensor_99_last") == "sensor_99_last"
    assert feature_label("3 other features") == "3 other features"


def test_rul_trajectory_band_prediction_and_truth() -> None:
    trajectory = pd.DataFrame({"cycle": [1, 2, 3], "rul": [100.0, 99.0, 97.0], "rul_low": [80.0, 79.0, 77.0],
                               "rul_high": [120.0, 119.0, 117.0]})
    fig = charts.rul_trajectory(trajectory)
    assert len(fig.data) == 3
    assert fig.data[1].fill == "tonexty" and fig.data[2].name == "predicted RUL"
    with_truth = charts.rul_trajectory(trajectory, pd.Series([102.0, 101.0, 100.0]))
    assert [t.name for t in with_truth.data][-1] == "true RUL (capped)"
    marked = charts.rul_trajectory(trajectory, outcomes=pd.DataFrame({"cycle": [2], "event": ["inspection"]}))
    (line,) = marked.layout.shapes
    assert line.x0 == line.x1 == 2.0
    assert marked.layout.annotations[0].text == "inspection (cycle 2)"


def test_prediction_history_against_the_realised_rul() -> None:
    predictions = pd.DataFrame({"cycle": [100, 110, 110], "model_version": ["1", "1", "2"],
                                "rul": [60.0, 45.0, 50.0], "rul_low": [40.0, 30.0, 35.0],
                                "rul_high": [80.0, 60.0, 70.0]})
    fig = charts.prediction_history(predictions, closed_cycle=250, cap=125.0,
                                    outcomes=pd.DataFrame({"cycle": [250], "event": ["failure"]}))
    assert [t.name for t in fig.data] == ["predicted, model v1", "predicted, model v2",
                                          "realised RUL (capped at 125)"]
    assert list(fig.data[0].x) == [100, 110] and list(fig.data[0].error_y.arrayminus) == [20.0, 15.0]
    realised = fig.data[2]
    assert realised.x[0] == 100 and realised.x[-1] == 250
    assert realised.y[0] == 125 and realised.y[-1] == 0 and realised.y[list(realised.x).index(200)] == 50
    assert fig.layout.annotations[0].text == "failure (cycle 250)"


def test_tree_waterfall_shows_top_features_the_rest_and_the_total() -> None:
    tree = pd.Series({"cycle": -5.0, "sensor_11_mean5": -9.0, "sensor_4_last": 3.0, "sensor_2_std10": 0.5})
    fig = charts.tree_waterfall(tree, base=80.0, top=2)
    (trace,) = fig.data
    assert isinstance(trace, go.Waterfall)
    assert list(trace.y) == ["expected value", "Ps30 HPC static pressure (psia), 5-cycle mean",
                             "engine age (cycles run)", "2 other features", "XGBoost output"]
    assert list(trace.x)[:4] == [80.0, -9.0, -5.0, 3.5]
    assert list(trace.measure) == ["absolute", "relative", "relative", "relative", "total"]


def _breakdown(rul: float = 19.2, approximation: float = 0.7) -> Breakdown:
    factors = (("sensor_11", -30.4), ("age", -15.6), ("sensor_4", 2.3))
    other = rul - approximation - 62.0 - sum(value for _, value in factors)
    return Breakdown(rul=rul, base=62.0, factors=factors, other_inputs=other, others=11, approximation=approximation)


def test_explanation_waterfall_adds_up_to_the_served_rul() -> None:
    b = _breakdown()
    (trace,) = charts.explanation_waterfall(b).data
    assert isinstance(trace, go.Waterfall)
    assert list(trace.y) == ["fleet-average prediction", "Ps30 HPC static pressure (psia)", "engine age (cycles run)",
                             "T50 LPT outlet temperature (°R)", "11 other inputs", "approximation", "predicted RUL"]
    assert list(trace.measure) == ["absolute", *["relative"] * 5, "total"]
    assert sum(trace.x) == pytest.approx(b.rul)  # the total bar is the served RUL
    labels = [int(t) for t in trace.text]
    assert labels[-1] == 19 and sum(labels[:-1]) == 19  # whole-cycle labels add up to the headline's number


def test_lstm_charts_keep_their_height_whatever_the_labels() -> None:
    by_sensor = pd.DataFrame({"input": ["sensor_11", "age", "sensor_4"], "lstm": [-2.0, 5.0, 1.0]})
    bars = charts.lstm_totals(by_sensor)
    assert list(bars.data[0].y) == ["age", "Ps30", "T50"] and list(bars.data[0].x) == [5.0, -2.0, 1.0]
    over_time = pd.DataFrame(np.arange(12, dtype=float).reshape(3, 4), index=["sensor_11", "sensor_4", "age"])
    heat = charts.lstm_heatmap(over_time, [7, 8, 9, 10])
    (trace,) = heat.data
    assert isinstance(trace, go.Heatmap) and list(trace.y) == ["Ps30", "T50", "age"]
    assert np.asarray(trace.z).shape == (3, 4) and trace.zmin == -11.0 and trace.zmax == 11.0
    for fig, rows in ((bars, 3), (heat, 3)):
        plot = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
        assert plot == charts.ROW_PX * rows and fig.layout.yaxis.automargin is False


def test_sensor_attribution_bars_with_and_without_baseline() -> None:
    after, before = _breakdown(), _breakdown(rul=40.0, approximation=-0.2)
    fig = charts.sensor_attribution(after)
    assert len(fig.data) == 1 and "62 cycles to 19 cycles" in fig.layout.title.text and fig.layout.margin.t == 60
    assert list(fig.data[0].y) == ["approximation", "11 other inputs", "T50 LPT outlet temperature (°R)",
                                   "engine age (cycles run)", "Ps30 HPC static pressure (psia)"]
    compared = charts.sensor_attribution(after, compare=before)
    assert [t.name for t in compared.data] == ["baseline", "what-if"]
    assert list(compared.data[0].x)[:2] == [-0.2, pytest.approx(before.other_inputs)]
    assert "40 (baseline) and 19 cycles (what-if)" in compared.layout.title.text


def test_whatif_compare_shows_baseline_and_modified_intervals() -> None:
    fig = charts.whatif_compare({"rul": 80.0, "rul_low": 60.0, "rul_high": 100.0},
                                {"rul": 60.0, "rul_low": 45.0, "rul_high": 75.0})
    assert [t.name for t in fig.data] == ["baseline", "what-if"]
    assert list(fig.data[1].x) == [60.0] and list(fig.data[1].error_x.arrayminus) == [15.0]
