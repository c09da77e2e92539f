"""Chart builders return plotly figures with the traces the pages rely on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pages import charts


def _fleet() -> pd.DataFrame:
    return pd.DataFrame({
        "dataset": ["test_FD001"] * 4,
        "unit": [1, 2, 3, 4],
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
    assert [t.name for t in fig.data] == ["sensor_2", "sensor_11"]
    assert list(fig.data[1].y) == [3.0, 2.0, 1.0]
    panels = charts.sensor_trends(frame, ["sensor_2", "sensor_11"], "Sensor readings", separate=True)
    assert [t.name for t in panels.data] == ["sensor_2", "sensor_11"]
    assert panels.data[0].yaxis == "y" and panels.data[1].yaxis == "y2"


def test_rul_trajectory_band_prediction_and_truth() -> None:
    trajectory = pd.DataFrame({"cycle": [1, 2, 3], "rul": [100.0, 99.0, 97.0], "rul_low": [80.0, 79.0, 77.0],
                               "rul_high": [120.0, 119.0, 117.0]})
    fig = charts.rul_trajectory(trajectory)
    assert len(fig.data) == 3
    assert fig.data[1].fill == "tonexty" and fig.data[2].name == "predicted RUL"
    with_truth = charts.rul_trajectory(trajectory, pd.Series([102.0, 101.0, 100.0]))
    assert [t.name for t in with_truth.data][-1] == "true RUL (capped)"


def test_tree_waterfall_shows_top_features_the_rest_and_the_total() -> None:
    tree = pd.Series({"cycle": -5.0, "sensor_11_mean5": -9.0, "sensor_4_last": 3.0, "sensor_2_std10": 0.5})
    fig = charts.tree_waterfall(tree, base=80.0, top=2)
    (trace,) = fig.data
    assert isinstance(trace, go.Waterfall)
    assert list(trace.y) == ["expected value", "sensor_11_mean5", "cycle", "2 other features", "XGBoost RUL"]
    assert list(trace.x)[:4] == [80.0, -9.0, -5.0, 3.5]
    assert list(trace.measure) == ["absolute", "relative", "relative", "relative", "total"]


def test_lstm_heatmap_is_channels_by_time() -> None:
    values = np.arange(12, dtype=float).reshape(4, 3)  # window 4, channels 3
    fig = charts.lstm_heatmap(values, ["sensor_2", "sensor_11", "age"], [7, 8, 9, 10])
    (trace,) = fig.data
    assert isinstance(trace, go.Heatmap)
    assert np.asarray(trace.z).shape == (3, 4) and list(trace.y) == ["sensor_2", "sensor_11", "age"]
    assert trace.zmin == -11.0 and trace.zmax == 11.0


def test_sensor_attribution_bars_with_and_without_baseline() -> None:
    by_sensor = pd.DataFrame({"input": ["sensor_11", "age", "sensor_4"], "combined": [-9.0, -4.0, 2.0],
                              "xgb": [-10.0, -4.0, 2.0], "lstm": [-7.0, -4.0, 2.0]})
    fig = charts.sensor_attribution(by_sensor, top=2)
    assert len(fig.data) == 1 and list(fig.data[0].y) == ["age", "sensor_11"]
    compared = charts.sensor_attribution(by_sensor, top=2, compare=by_sensor.assign(combined=[-1.0, -2.0, 0.0]))
    assert [t.name for t in compared.data] == ["baseline", "what-if"]
    assert list(compared.data[0].x) == [-2.0, -1.0]


def test_whatif_compare_shows_baseline_and_modified_intervals() -> None:
    fig = charts.whatif_compare({"rul": 80.0, "rul_low": 60.0, "rul_high": 100.0},
                                {"rul": 60.0, "rul_low": 45.0, "rul_high": 75.0})
    assert [t.name for t in fig.data] == ["baseline", "what-if"]
    assert list(fig.data[1].x) == [60.0] and list(fig.data[1].error_x.arrayminus) == [15.0]
