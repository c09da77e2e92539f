"""Out-of-experience flags: an FD001 model knows one operating regime and FD001's sensor ranges."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.cmapss import COLUMNS, SENSORS
from models.bundle import load_bundle, save_bundle
from models.ood import ExperienceCheck
from models.training import TrainConfig, train
from tests.conftest import trains

DATA = Path(os.environ.get("PM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "cmapss"))
TINY = TrainConfig(epochs=1, n_trees=8, early_stopping=4, hidden=8, layers=1, samples_per_epoch=256, batch=64,
                   threads=1)


def read(name: str, units: int | None = None) -> pd.DataFrame:
    """One NASA file (its first `units` engines), with a dataset column."""
    frame = pd.read_csv(DATA / f"{name}.txt.gz", sep=r"\s+", header=None, names=COLUMNS)
    if units is not None:
        frame = frame[frame["unit"] <= units].reset_index(drop=True)
    frame.insert(0, "dataset", name)
    return frame


@pytest.fixture(scope="module")
@trains
def fd001_model():
    return train(read("train_FD001"), TINY).ensemble


def test_fd002_engines_are_flagged_with_the_unseen_regime(fd001_model):
    pred = fd001_model.predict_last(read("test_FD002", 40))
    assert len(pred) == 40 and pred["ood"].all()
    for reason in pred["ood_reason"]:
        assert "operating regime never seen in training" in reason and "altitude" in reason
    assert "the model knows 1 regime)" in pred["ood_reason"].iloc[0]


def test_no_test_fd001_engine_is_flagged(fd001_model):
    pred = fd001_model.predict_last(read("test_FD001"))
    assert len(pred) == 100 and not pred["ood"].any()
    assert (pred["ood_reason"] == "").all()


def test_a_sensor_far_outside_its_training_range_is_named(fd001_model):
    engine = read("test_FD001", 3)
    sigma = fd001_model.pipeline.sensor_std[0, SENSORS.index("sensor_11")]
    unit2 = engine["unit"] == 2
    late = unit2 & (engine["cycle"] > engine.loc[unit2, "cycle"].max() - 10)
    engine.loc[late, "sensor_11"] += 25 * sigma
    pred = fd001_model.predict_last(engine).set_index("unit")
    assert pred.loc[2, "ood"] and not pred.loc[1, "ood"] and not pred.loc[3, "ood"]
    reason = pred.loc[2, "ood_reason"]
    assert "Ps30 (sensor_11)" in reason and "above its training range" in reason and "regime" in reason
    cycles = fd001_model.predict_cycles(engine[unit2])
    assert not cycles["ood"].iloc[:-10].any() and cycles["ood"].iloc[-3:].all()


def test_the_check_travels_in_the_bundle_as_json(fd001_model, tmp_path):
    folder = save_bundle(fd001_model, tmp_path / "bundle")
    body = json.loads((folder / "ensemble.json").read_text())
    again = ExperienceCheck.from_dict(body["experience"])
    assert again == fd001_model.experience and again.sensors == fd001_model.pipeline.sensors
    mixed = pd.concat([read("test_FD001", 2), read("test_FD002", 2)], ignore_index=True)
    pd.testing.assert_frame_equal(load_bundle(folder).predict_last(mixed), fd001_model.predict_last(mixed))
    assert np.array_equal(load_bundle(folder).predict_last(mixed)["ood"], [False, False, True, True])
