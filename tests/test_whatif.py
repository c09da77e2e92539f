"""What-if: shifting an engine's recent readings changes its prediction; slider ranges come from training."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from core.data import sensors
from core.data.cmapss import COLUMNS, SENSORS
from core.errors import UserError
from core.serving import whatif
from models.ensemble import Ensemble
from models.explain import Explainer, background_windows
from models.training import TrainConfig, train
from tests.conftest import trains

TINY = {"epochs": 1, "n_trees": 20, "samples_per_epoch": 1024, "hidden": 16, "layers": 1, "device": "cpu",
        "seed": 5}


@pytest.fixture(scope="module")
def fd001(cmapss_slice: Callable[..., list[str]]) -> pd.DataFrame:
    lines = cmapss_slice("train_FD001", units=24)
    frame = pd.DataFrame(np.array([line.split() for line in lines], dtype=float), columns=COLUMNS)
    frame[["unit", "cycle"]] = frame[["unit", "cycle"]].astype(int)
    frame.insert(0, "dataset", "train_FD001")
    return frame


@pytest.fixture(scope="module")
@trains
def tiny(fd001: pd.DataFrame) -> Ensemble:
    ensemble = train(fd001, TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY})).ensemble
    return dataclasses.replace(ensemble, weights={"rul_xgb": 0.6, "p_xgb": 0.6})


@pytest.fixture(scope="module")
def explainer(tiny: Ensemble, fd001: pd.DataFrame) -> Explainer:
    return Explainer(tiny, background_windows(tiny, fd001, n=16))


def test_slider_ranges_come_from_the_training_statistics(tiny: Ensemble) -> None:
    ranges = whatif.slider_ranges(tiny)
    assert list(ranges) == tiny.pipeline.sensors
    for sensor, r in ranges.items():
        sigma = float(np.mean(tiny.pipeline.sensor_std[:, SENSORS.index(sensor)]))
        assert r.sigma == pytest.approx(sigma)
        assert r.low == -r.high and r.high >= whatif.SPAN_SIGMA * sigma
        assert r.high <= whatif.SPAN_SIGMA * sigma + r.step + 1e-12
        assert 0 < r.step <= 2 * whatif.SPAN_SIGMA * sigma / whatif.SLIDER_STEPS
    wider = dataclasses.replace(tiny.pipeline, sensor_std=tiny.pipeline.sensor_std * 10)
    scaled = whatif.slider_ranges(dataclasses.replace(tiny, pipeline=wider))
    sensor = tiny.pipeline.sensors[0]
    assert scaled[sensor].sigma == pytest.approx(10 * ranges[sensor].sigma)


def test_shift_changes_only_the_last_n_cycles_of_the_chosen_sensor(fd001: pd.DataFrame) -> None:
    engine = whatif.engine_rows(fd001, "train_FD001", 2)
    shifted = whatif.shift_recent(engine, {"sensor_11": 0.5}, last_n=10)
    diff = shifted["sensor_11"].to_numpy() - engine["sensor_11"].to_numpy()
    np.testing.assert_allclose(diff[-10:], 0.5)
    np.testing.assert_allclose(diff[:-10], 0.0)
    others = [c for c in COLUMNS if c != "sensor_11"]
    pd.testing.assert_frame_equal(shifted[others], engine[others])
    everything = whatif.shift_recent(engine, {"sensor_4": -1.0}, last_n=10_000)
    np.testing.assert_allclose(everything["sensor_4"] - engine["sensor_4"], -1.0)


@pytest.mark.parametrize("shifts, last_n, message", [
    ({"sensor_99": 1.0}, 5, "not a C-MAPSS sensor"),
    ({"sensor_2": 1.0}, 0, "at least the last cycle"),
    ({"sensor_2": float("inf")}, 5, "finite"),
])
def test_bad_shifts_are_refused(fd001: pd.DataFrame, shifts: dict, last_n: int, message: str) -> None:
    with pytest.raises(UserError, match=message):
        whatif.shift_recent(whatif.engine_rows(fd001, "train_FD001", 1), shifts, last_n)


def test_unknown_engine_is_refused(fd001: pd.DataFrame) -> None:
    with pytest.raises(UserError, match="Engine 999 of train_FD001 has no readings"):
        whatif.engine_rows(fd001, "train_FD001", 999)


def test_predict_one_matches_fleet_scoring_and_explains(tiny: Ensemble, explainer: Explainer,
                                                        fd001: pd.DataFrame) -> None:
    engine = whatif.engine_rows(fd001, "train_FD001", 7)
    outcome = whatif.predict_one(tiny, explainer, engine)
    last = tiny.predict_last(engine).iloc[0]
    assert outcome.rul == pytest.approx(last["rul"]) and outcome.risk == last["risk"]
    assert outcome.rul_low <= outcome.rul <= outcome.rul_high
    assert outcome.cycle == engine["cycle"].max()
    assert outcome.explanation is not None
    assert whatif.predict_one(tiny, None, engine).explanation is None
    with pytest.raises(UserError, match="exactly one engine"):
        whatif.predict_one(tiny, explainer, fd001[fd001["unit"] <= 2])


def test_what_if_moves_the_prediction_and_keeps_the_baseline(tiny: Ensemble, explainer: Explainer,
                                                             fd001: pd.DataFrame) -> None:
    engine = whatif.engine_rows(fd001, "train_FD001", 7)
    baseline = whatif.predict_one(tiny, explainer, engine)
    unchanged = whatif.what_if(tiny, explainer, engine, {"sensor_11": 0.0}, 10, baseline=baseline)
    assert unchanged.modified is baseline and unchanged.rul_change == 0.0
    ranges = whatif.slider_ranges(tiny)
    changes = []
    for sensor in baseline.explanation.top_sensors(3):
        for amount in (ranges[sensor].low, ranges[sensor].high):
            result = whatif.what_if(tiny, explainer, engine, {sensor: amount}, 20, baseline=baseline)
            assert result.baseline is baseline and result.shifts == {sensor: amount}
            assert result.modified.rul_low <= result.modified.rul <= result.modified.rul_high
            changes.append(result.rul_change)
            moved = result.modified.explanation.by_sensor.set_index("input").loc[sensor, "combined"]
            assert moved != baseline.explanation.by_sensor.set_index("input").loc[sensor, "combined"]
    assert any(abs(c) > 0.5 for c in changes)


def test_normalised_readings_use_the_training_regime_statistics(tiny: Ensemble, fd001: pd.DataFrame) -> None:
    engine = whatif.engine_rows(fd001, "train_FD001", 3)
    frame = whatif.normalised(tiny, engine)
    assert list(frame.columns) == ["cycle", *tiny.pipeline.sensors]
    sensor = tiny.pipeline.sensors[0]
    j = SENSORS.index(sensor)
    expected = (engine[sensor] - tiny.pipeline.sensor_mean[0, j]) / tiny.pipeline.sensor_std[0, j]
    np.testing.assert_allclose(frame[sensor], expected)


def test_explanations_name_sensors_by_their_label(tiny: Ensemble, explainer: Explainer,
                                                  fd001: pd.DataFrame) -> None:
    explanation = whatif.predict_one(tiny, explainer, whatif.engine_rows(fd001, "train_FD001", 4)).explanation
    plain, named = explanation.sentences(), whatif.labelled_sentences(explanation)
    assert named[0] == plain[0] and len(named) == len(plain) and named[5:] == plain[5:]
    for name, before, after in zip(explanation.by_sensor["input"], plain[1:5], named[1:5]):
        if name == "age":
            assert after == before
        else:
            assert after == sensors.label(name) + before[len(name):] and "sensor_" not in after


@pytest.fixture(scope="module")
@trains
def steep(fd001: pd.DataFrame) -> Ensemble:
    """A tiny ensemble whose trees learn fast and weigh 0.9 in the blend: pushed hard, its unclipped RUL goes below 0."""
    config = TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY, "learning_rate": 0.5})
    return dataclasses.replace(train(fd001, config).ensemble, weights={"rul_xgb": 0.9, "p_xgb": 0.6})


def test_what_if_sentences_quote_the_served_rul_never_a_negative_one(steep: Ensemble, fd001: pd.DataFrame) -> None:
    explainer = Explainer(steep, background_windows(steep, fd001, n=16))
    unit = int(steep.predict_last(fd001).sort_values("rul")["unit"].iloc[0])
    engine = whatif.engine_rows(fd001, "train_FD001", unit)
    baseline = whatif.predict_one(steep, explainer, engine)
    ranges = whatif.slider_ranges(steep)
    shifts = {}  # each top sensor shifted to the end of its range that lowers the RUL most
    for sensor in baseline.explanation.top_sensors(4):
        ends = (ranges[sensor].low, ranges[sensor].high)
        shifts[sensor] = min(ends, key=lambda amount: whatif.what_if(steep, None, engine, {sensor: amount}, 30)
                             .modified.rul)
    result = whatif.what_if(steep, explainer, engine, shifts, 30, baseline=baseline)
    for outcome in (result.modified, result.baseline):
        lines = whatif.labelled_sentences(outcome.explanation)
        assert f"predicted RUL to {outcome.rul:.0f} cycle" in lines[0]
        assert not re.search(r"-\s*\d", lines[0]), lines[0]
        stated = [int(n) for n in re.findall(r"(?:prediction of|RUL to) (-?\d+) cycle", lines[0])]
        assert len(stated) == 2 and all(0 <= n <= steep.cap for n in stated)
    explanation = result.modified.explanation
    assert explanation.attributed < 0 <= result.modified.rul, "the unclipped blend is negative: the case to state"
    b = explanation.breakdown(4)
    assert b.base + sum(v for _, v in b.factors) + b.remainder == pytest.approx(result.modified.rul, abs=0.5)
    assert explanation.clipping > 0.5
