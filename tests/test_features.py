"""Feature pipeline: targets, regime normalisation, sensor selection, tree features, LSTM windows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.cmapss import COLUMNS, RUL_CAP, SENSORS
from core.data.features import FeaturePipeline, check_frame, targets
from core.errors import UserError

DATA = Path(os.environ.get("PM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "cmapss"))


def read(name: str) -> pd.DataFrame:
    """One NASA file as a frame with a dataset column."""
    frame = pd.read_csv(DATA / f"{name}.txt.gz", sep=r"\s+", header=None, names=COLUMNS)
    frame.insert(0, "dataset", name)
    return frame


def engine(unit: int, cycles: int, *, dataset: str = "train_X", altitude: float = 0.0, offset: float = 0.0,
           slope: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A hand-built engine: sensor_2 = offset + slope * cycle + noise; others noisy or constant."""
    rng = np.random.default_rng(seed + unit)
    cyc = np.arange(1, cycles + 1)
    data = {"dataset": dataset, "unit": unit, "cycle": cyc,
            "setting_1": altitude + rng.normal(0, 0.001, cycles), "setting_2": 0.0, "setting_3": 100.0}
    for i, s in enumerate(SENSORS):
        data[s] = 10.0 * (i + 1) + rng.normal(0, 1.0, cycles)
    data["sensor_2"] = offset + slope * cyc + rng.normal(0, 1.0, cycles)
    data["sensor_1"] = 5.0
    data["sensor_5"] = np.where(cyc % 50 == 0, 1.0, 0.0)
    return pd.DataFrame(data)


def test_targets_run_to_failure_capped_and_labelled():
    frame = engine(1, 200)
    t = targets(frame)
    assert t["rul_true"].iloc[0] == 199 and t["rul_true"].iloc[-1] == 0
    assert t["rul"].max() == RUL_CAP
    assert t["fail"].sum() == 31  # RUL 0..30
    assert (t.loc[t["rul_true"] <= 30, "fail"] == 1).all()


def test_targets_with_truth_add_the_rul_after_the_last_cycle():
    frame = engine(3, 10, dataset="test_X")
    truth = pd.DataFrame({"dataset": ["test_X"], "unit": [3], "rul": [25]})
    t = targets(frame, truth)
    assert t["rul_true"].tolist() == list(range(34, 24, -1))
    assert t["fail"].tolist() == [0] * 4 + [1] * 6
    with pytest.raises(UserError, match="No true RUL"):
        targets(frame, truth.assign(unit=4))


def test_regime_normalisation_removes_operating_condition_offsets():
    low = pd.concat([engine(u, 80, altitude=0.0, offset=100.0) for u in range(1, 4)])
    high = pd.concat([engine(u, 80, altitude=20.0, offset=500.0) for u in range(4, 7)])
    frame = pd.concat([low, high], ignore_index=True)
    pipe = FeaturePipeline().fit(frame)
    assert len(pipe.centres) == 2
    prep = pipe.prepare(frame)
    col = pipe.sensors.index("sensor_2")
    high_rows = prep.keys["unit"].to_numpy() >= 4
    for rows in (high_rows, ~high_rows):
        assert abs(prep.values[rows, col].mean()) < 1e-9
        assert abs(prep.values[rows, col].std() - 1.0) < 1e-9


def test_regimes_are_found_from_the_data():
    fd001, fd002 = read("train_FD001"), read("train_FD002")
    assert len(FeaturePipeline().fit(fd001).centres) == 1
    assert len(FeaturePipeline().fit(fd002).centres) == 6
    mixture = pd.concat([fd001[fd001["unit"] <= 20], fd002[fd002["unit"] <= 20]], ignore_index=True)
    assert len(FeaturePipeline().fit(mixture).centres) == 6


def test_near_constant_sensors_are_dropped():
    pipe = FeaturePipeline().fit(pd.concat([engine(u, 60) for u in (1, 2)]))
    assert "sensor_1" in pipe.dropped and "sensor_5" in pipe.dropped
    assert "sensor_2" in pipe.sensors
    fd001 = FeaturePipeline().fit(read("train_FD001"))
    assert set(fd001.dropped) == {f"sensor_{i}" for i in (1, 5, 6, 10, 16, 18, 19)}


def test_windows_end_at_the_row_and_pad_short_series_with_the_first_reading():
    frame = pd.concat([engine(1, 50), engine(2, 4)], ignore_index=True)
    pipe = FeaturePipeline(lstm_window=6, lstm_stats=()).fit(frame)
    prep = pipe.prepare(frame)
    win = pipe.windows(prep, prep.rows("all"))
    assert win.shape == (54, 6, len(pipe.sensors) + 1)
    np.testing.assert_allclose(win[:, -1, :-1], prep.values, rtol=1e-6, atol=1e-6)
    short = win[prep.last[1]]  # engine 2, last of 4 cycles
    first = prep.values[prep.start[prep.last[1]]]
    np.testing.assert_allclose(short[:3, :-1], np.tile(first, (3, 1)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(short[:, -1], np.array([1, 1, 1, 2, 3, 4]) / 100.0, rtol=1e-6)


def test_lstm_summary_channels_carry_each_steps_history_statistics():
    frame = pd.concat([engine(1, 60, slope=1.0), engine(2, 45, slope=1.0)], ignore_index=True)
    pipe = FeaturePipeline(lstm_window=5, lstm_stats=("mean10", "meanall", "slopeall")).fit(frame)
    k = len(pipe.sensors)
    assert pipe.n_channels == 4 * k + 1
    assert pipe.lstm_inputs == [*pipe.sensors * 4, "age"] and len(pipe.lstm_scale) == 3 * k
    prep = pipe.prepare(frame)
    win = pipe.windows(prep, prep.last)
    col = pipe.sensors.index("sensor_2")
    v = prep.values[:60, col]
    for step, cycle in enumerate(range(56, 61)):  # engine 1's window ends at its cycle 60
        seen = v[:cycle]
        assert win[0, step, col] == pytest.approx(seen[-1], rel=1e-5)
        assert win[0, step, k + col] * pipe.lstm_scale[col] == pytest.approx(seen[-10:].mean(), rel=1e-4)
        assert win[0, step, 2 * k + col] * pipe.lstm_scale[k + col] == pytest.approx(seen.mean(), rel=1e-4)
        slope = np.polyfit(np.arange(cycle), seen, 1)[0]
        assert win[0, step, 3 * k + col] * pipe.lstm_scale[2 * k + col] == pytest.approx(slope, rel=1e-3)
    assert win[0, -1, -1] == pytest.approx(0.60)
    summary = pipe.windows(pipe.prepare(frame), np.arange(105))[:, -1, k:-1]
    np.testing.assert_allclose(summary.std(axis=0), 1.0, rtol=1e-3)  # scaled to unit training spread
    cached = pipe.prepare(frame)
    pipe.cache_summary(cached)
    np.testing.assert_array_equal(pipe.windows(cached, cached.last), win)  # training's cache changes nothing
    with pytest.raises(UserError, match="summary channel"):
        FeaturePipeline(lstm_stats=("median5",)).fit(frame)


def test_tree_features_statistics_and_short_series():
    frame = pd.concat([engine(1, 40, slope=2.0), engine(2, 40, slope=2.0), engine(3, 3, slope=2.0)],
                      ignore_index=True)
    pipe = FeaturePipeline(mean_windows=(5, 30), std_windows=(10,), slope_windows=(10,)).fit(frame)
    prep = pipe.prepare(frame)
    x = pipe.tree_features(prep, prep.last)
    names = pipe.tree_names
    col = pipe.sensors.index("sensor_2")
    v = prep.values[:, col]
    first = prep.last[0]
    assert x[0, names.index("cycle")] == 40
    assert x[0, names.index("sensor_2_mean5")] == pytest.approx(v[first - 4:first + 1].mean(), rel=1e-5)
    expected_slope = np.polyfit(np.arange(10), v[first - 9:first + 1], 1)[0]
    assert x[0, names.index("sensor_2_slope10")] == pytest.approx(expected_slope, rel=1e-4)
    short = prep.last[2]
    assert x[2, names.index("sensor_2_mean30")] == pytest.approx(v[short - 2:short + 1].mean(), rel=1e-5)
    assert x[2, names.index("sensor_2_std10")] == pytest.approx(v[short - 2:short + 1].std(), rel=1e-4)


def test_whole_history_window_covers_every_reading_so_far():
    frame = pd.concat([engine(1, 150, slope=0.5), engine(2, 90, slope=0.5)], ignore_index=True)
    pipe = FeaturePipeline(mean_windows=(0,), std_windows=(0,), slope_windows=(0, 120)).fit(frame)
    assert pipe.history is None and "sensor_2_meanall" in pipe.tree_names
    prep = pipe.prepare(frame, "last")
    assert len(prep.keys) == 240  # a whole-history feature keeps every reading
    x = pipe.tree_features(prep, prep.last)
    v = prep.values[:150, pipe.sensors.index("sensor_2")]
    names = pipe.tree_names
    assert x[0, names.index("sensor_2_meanall")] == pytest.approx(v.mean(), rel=1e-5)
    assert x[0, names.index("sensor_2_stdall")] == pytest.approx(v.std(), rel=1e-4)
    assert x[0, names.index("sensor_2_slopeall")] == pytest.approx(np.polyfit(np.arange(150), v, 1)[0], rel=1e-4)
    assert x[0, names.index("sensor_2_slope120")] == pytest.approx(np.polyfit(np.arange(120), v[30:], 1)[0], rel=1e-4)


@pytest.mark.parametrize("pipe", [FeaturePipeline(), FeaturePipeline(mean_windows=(5, 20), std_windows=(10,),
                                                                  slope_windows=(10, 20), lstm_stats=("mean10", "slope20"))],
                         ids=["whole-history", "trailing-only"])
def test_features_of_a_row_ignore_later_readings_other_engines_and_row_order(pipe):
    frame = pd.concat([engine(u, 75, slope=1.0) for u in (1, 2, 3)], ignore_index=True)
    pipe.fit(frame)
    full = pipe.transform(frame, "all")
    cut = frame[(frame["unit"] == 2) & (frame["cycle"] <= 20)]
    alone = pipe.transform(cut.sample(frac=1.0, random_state=1), "last")
    row = int(np.flatnonzero((full.keys["unit"] == 2) & (full.keys["cycle"] == 20))[0])
    np.testing.assert_allclose(alone.tree[0], full.tree[row], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(alone.windows[0], full.windows[row], rtol=1e-5)
    last = pipe.transform(frame, "last")
    at_last = full.keys.groupby("unit").tail(1).index.to_numpy()
    np.testing.assert_allclose(last.tree, full.tree[at_last], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(last.windows, full.windows[at_last])
    pd.testing.assert_frame_equal(last.keys, full.keys.iloc[at_last].reset_index(drop=True))


def test_pipeline_json_round_trip_and_malformed_json():
    frame = pd.concat([engine(u, 30) for u in (1, 2)], ignore_index=True)
    pipe = FeaturePipeline().fit(frame)
    again = FeaturePipeline.from_json(pipe.to_json())
    a, b = pipe.transform(frame, "all"), again.transform(frame, "all")
    np.testing.assert_array_equal(a.tree, b.tree)
    np.testing.assert_array_equal(a.windows, b.windows)
    with pytest.raises(UserError, match="not valid JSON"):
        FeaturePipeline.from_json("{broken")
    with pytest.raises(UserError, match="malformed"):
        FeaturePipeline.from_json('{"version": 2}')
    with pytest.raises(UserError, match="older release; retrain"):
        FeaturePipeline.from_json(json.dumps({**pipe.to_dict(), "version": 1}))


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["sensor_4"]), "lack the column"),
    (lambda f: f.assign(sensor_3=np.where(f["cycle"] == 3, np.nan, f["sensor_3"])), "missing or infinite"),
    (lambda f: f.assign(sensor_3=f["sensor_3"].astype(str)), "not numbers"),
    (lambda f: f.iloc[:0], "empty"),
])
def test_bad_frames_raise_user_errors(change, message):
    with pytest.raises(UserError, match=message):
        check_frame(change(engine(1, 10)))


def test_duplicate_cycles_are_rejected():
    frame = pd.concat([engine(1, 10), engine(2, 10)], ignore_index=True)
    pipe = FeaturePipeline().fit(frame)
    with pytest.raises(UserError, match="cycle 5 more than once"):
        pipe.prepare(pd.concat([frame, frame[(frame["unit"] == 2) & (frame["cycle"] == 5)]]))
