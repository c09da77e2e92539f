"""Training, prediction, bundles and reproducibility of the ensemble, on small slices of the real data."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from core.data.cmapss import COLUMNS
from core.data.features import FeaturePipeline
from core.data.snapshot import SOURCE_COLUMNS
from core.errors import UserError
from models.bundle import load_bundle, save_bundle
from models.calibration import Conformal
from models.device import resolve_device
from models.ensemble import OUTPUT_COLUMNS, RISK_LEVELS
from models.lstm import censored_squared_error
from models.training import TrainConfig, evaluate, in_service_engines, split_engines, train
from tests.conftest import trains

DATA = Path(os.environ.get("PM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "cmapss"))
TINY = TrainConfig(epochs=1, n_trees=8, early_stopping=4, hidden=8, layers=2, samples_per_epoch=256, batch=64,
                   val_fraction=0.25, threads=1)


def read(name: str, units: int) -> pd.DataFrame:
    """The first `units` engines of one NASA file, with a dataset column."""
    frame = pd.read_csv(DATA / f"{name}.txt.gz", sep=r"\s+", header=None, names=COLUMNS)
    frame = frame[frame["unit"] <= units].reset_index(drop=True)
    frame.insert(0, "dataset", name)
    return frame


def truth(subset: str, units: int) -> pd.DataFrame:
    """True RUL after the last cycle of the first `units` test engines."""
    rul = pd.read_csv(DATA / f"RUL_{subset}.txt.gz", sep=r"\s+", header=None, names=["rul"])
    return pd.DataFrame({"dataset": f"test_{subset}", "unit": np.arange(1, units + 1), "rul": rul["rul"][:units]})


@pytest.fixture(scope="module")
def train_frame() -> pd.DataFrame:
    return pd.concat([read("train_FD001", 8), read("train_FD002", 8)], ignore_index=True)


@pytest.fixture(scope="module")
def test_frame() -> pd.DataFrame:
    return read("test_FD001", 6)


@pytest.fixture(scope="module")
@trains
def trained(train_frame):
    records: list[dict] = []
    result = train(train_frame, TINY, progress=records.append)
    return result, records


def test_training_returns_metrics_history_and_a_working_ensemble(trained, test_frame):
    result, records = trained
    for key in ("val_rmse", "val_mae", "val_phm08", "val_f2", "val_precision", "val_recall", "val_roc_auc",
                "val_pr_auc", "val_coverage", "val_interval_width"):
        assert key in result.metrics and np.isfinite(result.metrics[key])
    assert {"xgboost", "lstm", "calibrate"} <= {r["phase"] for r in records}
    assert any(r["phase"] == "lstm" and "val_loss" in r for r in result.history)
    pred = result.ensemble.predict_last(test_frame)
    assert list(pred.columns) == OUTPUT_COLUMNS
    assert len(pred) == 6 and pred["unit"].tolist() == list(range(1, 7))
    assert (pred["cycle"].to_numpy() == test_frame.groupby("unit")["cycle"].max().to_numpy()).all()
    assert ((pred["rul_low"] <= pred["rul"]) & (pred["rul"] <= pred["rul_high"])).all()
    assert pred["rul"].between(0, 125).all() and pred["p_fail_30"].between(0, 1).all()
    assert set(pred["risk"]) <= set(RISK_LEVELS)
    cycles = result.ensemble.predict_cycles(test_frame)
    assert len(cycles) == len(test_frame)
    last = cycles.groupby("unit").tail(1).reset_index(drop=True)
    pd.testing.assert_frame_equal(last, pred)


def test_metrics_report_each_member_and_the_fitted_weights(trained):
    result = trained[0]
    assert np.isfinite(result.metrics["val_rmse_xgb"]) and np.isfinite(result.metrics["val_rmse_lstm"])
    assert result.metrics["weight_rul_xgb"] == result.ensemble.weights["rul_xgb"]
    assert result.metrics["weight_p_xgb"] == result.ensemble.weights["p_xgb"]


def test_the_summary_channels_are_a_training_setting(train_frame, tmp_path):
    ensemble = train(train_frame, dataclasses.replace(TINY, lstm_stats="meanall, slope30")).ensemble
    assert ensemble.pipeline.lstm_stats == ("meanall", "slope30")
    assert ensemble.lstm.arch["n_channels"] == 3 * len(ensemble.pipeline.sensors) + 1
    assert load_bundle(save_bundle(ensemble, tmp_path / "b")).pipeline.lstm_stats == ("meanall", "slope30")
    with pytest.raises(UserError, match="summary channel 'median5'"):
        train(train_frame, dataclasses.replace(TINY, lstm_stats="median5"))


def test_an_older_bundle_asks_for_a_retrain(trained, tmp_path):
    folder = save_bundle(trained[0].ensemble, tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": 1}))
    with pytest.raises(UserError, match="format version 1.*retrain"):
        load_bundle(folder)


def test_info_reports_weights_thresholds_coverage_device_and_seed(trained):
    info = trained[0].ensemble.info
    assert 0 <= info["weights"]["rul_xgb"] <= 1 and 0 <= info["weights"]["p_xgb"] <= 1
    assert 0 < info["thresholds"]["medium"] <= info["thresholds"]["high"]
    assert info["coverage"]["nominal"] == 0.9 and "validation" in info["coverage"]
    assert info["device"]["torch"] in ("cpu", "cuda") and info["seed"] == TINY.seed
    assert info["features"]["regimes"] == 6 and "torch" in info["versions"]
    json.dumps(info)


def test_validation_engines_never_reach_the_feature_pipeline(trained, train_frame):
    train_mask, val_mask = split_engines(train_frame, TINY.val_fraction, TINY.seed)
    engines = train_frame[["dataset", "unit"]].astype(str).agg("/".join, axis=1)
    assert not set(engines[train_mask]) & set(engines[val_mask])
    assert set(engines[train_mask]) | set(engines[val_mask]) == set(engines)
    assert set(train_frame.loc[val_mask, "dataset"]) == {"train_FD001", "train_FD002"}
    fitted = trained[0].ensemble.pipeline.to_dict()
    assert fitted == FeaturePipeline(lstm_window=TINY.window).fit(train_frame[train_mask]).to_dict()
    meta = trained[0].ensemble.info["trained_on"]
    assert meta["val_engines"] == engines[val_mask].nunique()


def test_the_in_service_engines_a_model_trained_on_come_from_the_rows_lineage(test_frame):
    assert in_service_engines(test_frame) == []
    rows = test_frame.assign(source_dataset=None, source_engine=None, source_unit=np.nan)
    rows.loc[rows["unit"] == 2, SOURCE_COLUMNS] = ["line-b", "ESN-2", 7.0]
    rows.loc[rows["unit"] == 3, SOURCE_COLUMNS] = ["gone", "X", np.nan]
    assert in_service_engines(rows) == [{"dataset": "gone", "engine": "X", "unit": None},
                                        {"dataset": "line-b", "engine": "ESN-2", "unit": 7}]


def test_evaluate_leaves_out_the_test_engines_the_model_was_trained_on(trained, test_frame):
    ensemble = trained[0].ensemble
    seen = dataclasses.replace(ensemble, meta={**ensemble.meta, "trained_on": {"in_service_engines": [
        {"dataset": "test_FD001", "engine": "3", "unit": 3}, {"dataset": "elsewhere", "engine": "1", "unit": 1}]}})
    left_out = evaluate(seen, test_frame, truth("FD001", 6))
    others = evaluate(ensemble, test_frame[test_frame["unit"] != 3], truth("FD001", 6))
    assert left_out["excluded"] == 1 and left_out["n"] == 5 and others["excluded"] == 0
    assert left_out["rmse"] == pytest.approx(others["rmse"]) and left_out["phm08"] == pytest.approx(others["phm08"])
    every = dataclasses.replace(ensemble, meta={"trained_on": {"in_service_engines": [
        {"dataset": "test_FD001", "engine": str(u), "unit": u} for u in range(1, 7)]}})
    assert evaluate(every, test_frame, truth("FD001", 6)) == {"n": 0.0, "excluded": 6.0}


def test_evaluate_on_a_test_slice(trained, test_frame):
    ensemble = trained[0].ensemble
    scores = evaluate(ensemble, test_frame, truth("FD001", 6))
    assert scores["n"] == 6 and np.isfinite(scores["rmse"]) and 0 <= scores["coverage"] <= 1
    parts = ensemble.components(ensemble.features(test_frame))
    capped = np.minimum(truth("FD001", 6)["rul"].to_numpy(), 125)
    for member in ("xgb", "lstm"):
        expected = np.sqrt(np.mean((parts[f"rul_{member}"].to_numpy() - capped) ** 2))
        assert scores[f"rmse_{member}"] == pytest.approx(expected)
    with pytest.raises(UserError, match="No true RUL"):
        evaluate(trained[0].ensemble, test_frame, truth("FD001", 5))


def test_bundle_round_trip_gives_identical_predictions(trained, test_frame, tmp_path):
    ensemble = trained[0].ensemble
    save_bundle(ensemble, tmp_path / "bundle")
    loaded = load_bundle(tmp_path / "bundle")
    pd.testing.assert_frame_equal(loaded.predict_cycles(test_frame), ensemble.predict_cycles(test_frame))
    assert loaded.info == json.loads(json.dumps(ensemble.info))
    save_bundle(ensemble, tmp_path / "bundle")  # replacing an existing bundle works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


@pytest.mark.parametrize("name", ["xgb_rul.ubj", "xgb_fail.ubj", "lstm.pt", "pipeline.json", "ensemble.json",
                                  "manifest.json"])
def test_missing_artifact_is_named(trained, tmp_path, name):
    folder = save_bundle(trained[0].ensemble, tmp_path / "b")
    (folder / name).unlink()
    with pytest.raises(UserError, match=name.replace(".", r"\.")):
        load_bundle(folder)


@pytest.mark.parametrize("name", ["xgb_rul.ubj", "lstm.pt", "ensemble.json"])
def test_corrupt_artifact_is_named(trained, tmp_path, name):
    folder = save_bundle(trained[0].ensemble, tmp_path / "b")
    (folder / name).write_bytes(b"\x00garbage")
    with pytest.raises(UserError, match=f"{name}.*corrupt"):
        load_bundle(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"][name] = __import__("hashlib").sha256(b"\x00garbage").hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=name.replace(".", r"\.")):
        load_bundle(folder)


def test_missing_bundle_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_bundle(tmp_path / "nowhere")


def test_same_seed_same_predictions_on_cpu(trained, train_frame, test_frame):
    again = train(train_frame, TINY)
    pd.testing.assert_frame_equal(again.ensemble.predict_last(test_frame),
                                  trained[0].ensemble.predict_last(test_frame))


def test_conformal_intervals_reach_nominal_coverage_on_exchangeable_data():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 125, 4000)
    truth = pred + rng.normal(0, 2 + pred / 10)
    conf = Conformal.fit(pred[:2000], truth[:2000], nominal=0.9, cap=1e9)
    low, high = conf.interval(pred[2000:])
    covered = np.mean((truth[2000:] >= low) & (truth[2000:] <= high))
    assert 0.87 <= covered <= 0.93
    near, far = pred[2000:] < 15, pred[2000:] > 115
    assert (high - low)[near].mean() < (high - low)[far].mean()


def test_conformal_intervals_cover_new_engines_when_readings_share_an_engine_bias():
    """Readings of one engine miss by the same sign; quantiles pooled over 20 engines' readings then
    cover new engines less than nominal, and calibrating on held-out engines restores the coverage."""
    rng = np.random.default_rng(1)
    pooled, by_engine, levels = [], [], []
    for _ in range(20):
        engine = np.repeat(np.arange(40), 60)
        pred = rng.uniform(0, 125, len(engine))
        truth = pred + rng.normal(0, 4, 40)[engine] + rng.normal(0, 1, len(engine))
        cal, new = engine < 20, engine >= 20
        for conf, out in [(Conformal.fit(pred[cal], truth[cal], nominal=0.9, cap=1e9), pooled),
                          (Conformal.fit(pred[cal], truth[cal], nominal=0.9, cap=1e9, engines=engine[cal]), by_engine)]:
            low, high = conf.interval(pred[new])
            out.append(np.mean((truth[new] >= low) & (truth[new] <= high)))
            levels.append(conf.level)
    assert np.mean(pooled) < 0.87
    assert 0.88 <= np.mean(by_engine) <= 0.93
    assert min(levels[1::2]) > 0.9 and set(levels[::2]) == {0.9}


def test_the_lstm_loss_treats_a_capped_target_as_a_lower_bound():
    """An engine at the cap has at least that much life left: overshooting it costs nothing,
    undershooting it costs as usual, and uncapped targets are ordinary squared errors."""
    pred = torch.tensor([1.3, 0.8, 0.8, 0.2], requires_grad=True)
    rul = torch.tensor([1.0, 1.0, 0.5, 0.5])
    error = censored_squared_error(pred, rul)
    assert error.detach().numpy() == pytest.approx([0.0, 0.04, 0.09, 0.09])
    error.sum().backward()
    assert pred.grad.numpy() == pytest.approx([0.0, -0.4, 0.6, -0.6])


def test_device_resolution():
    if torch.cuda.is_available():
        assert resolve_device("auto").torch == "cuda"
    else:
        assert resolve_device("auto").name == "cpu"
        with pytest.raises(UserError, match="CUDA"):
            resolve_device("cuda")
    assert resolve_device("cpu").xgboost == "cpu"
    with pytest.raises(UserError, match="device must be one of"):
        resolve_device("tpu")


def test_bad_config_is_a_user_error(train_frame):
    with pytest.raises(UserError, match="val_fraction"):
        train(train_frame, TrainConfig(val_fraction=1.5))
    with pytest.raises(UserError, match="Unknown training setting"):
        TrainConfig.from_dict({"epochs": 1, "colour": "red"})
