"""Comparing two registered versions: differing parameters, metric deltas (validation, test, live), loss curves
from MLflow's metric history and training data lineage, in core and through `python -m core models compare`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from core.cli import main
from core.data import fleet_ops
from core.errors import UserError
from core.operations import compare, run_logging


def log_version(folder: Path, tag: str, params: dict[str, Any], metrics: dict[str, float], datasets: str,
                epochs: int) -> int:
    """Register a version whose run holds `params`, `metrics`, per-epoch LSTM and XGBoost losses and a lineage."""
    bundle = folder / f"bundle-{tag}"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"tag": tag}))
    history = [{"phase": "lstm", "epoch": e, "train_loss": 1.0 / e, "val_loss": 1.5 / e} for e in range(1, epochs + 1)]
    history += [{"phase": "xgboost", "model": "RUL regressor", "epoch": e, "train_loss": 20.0 / e, "val_loss": 25.0 / e}
                for e in range(1, 4)]
    _, version = run_logging.log_training(
        bundle_dir=bundle, params=params, metrics=metrics, history=history,
        lineage={"datasets": datasets, "sha256": f"{tag}-sha", "engines": 100, "rows": 20631}, tags={"device": "cpu"})
    return version


@pytest.fixture()
def two_versions(pm_home: Path, tmp_path: Path) -> tuple[int, int]:
    first = log_version(tmp_path, "a", {"epochs": 1, "n_trees": 20, "seed": 7},
                        {"val_rmse": 14.0, "val_f2": 0.80, "val_n": 4653.0, "test_FD001_rmse": 15.0,
                         "test_FD001_excluded": 0.0}, "train_FD001", epochs=1)
    second = log_version(tmp_path, "b", {"epochs": 3, "n_trees": 20, "seed": 7},
                         {"val_rmse": 13.0, "val_f2": 0.85, "val_n": 4653.0, "test_FD001_rmse": 14.5,
                          "test_FD001_excluded": 0.0}, "train_FD001,train_FD003", epochs=3)
    return first, second


def _metric(result: dict[str, Any], key: str) -> dict[str, Any]:
    return next(m for m in result["metrics"] if m["key"] == key)


def test_compare_lists_differing_params_metric_deltas_losses_and_lineage(
        two_versions: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = two_versions
    monkeypatch.setattr(fleet_ops, "live_accuracy", lambda: {"by_version": [
        {"model_version": str(a), "engines": 4, "rmse": 20.0, "mae": 15.0, "coverage": 0.75, "high_recall": 0.5,
         "high_precision": 1.0},
        {"model_version": str(b), "engines": 4, "rmse": 18.0, "mae": 14.0, "coverage": 0.8, "high_recall": 1.0,
         "high_precision": 0.5}]})
    result = compare.compare(a, b)
    assert result["parameters"] == [{"name": "epochs", "a": "1", "b": "3"}]
    assert result["same_parameters"] == 2
    assert _metric(result, "val_rmse")["delta"] == pytest.approx(-1.0)
    assert _metric(result, "val_f2")["delta"] == pytest.approx(0.05)
    assert _metric(result, "test_FD001_rmse") == {"group": "test", "key": "test_FD001_rmse", "label": "Test FD001 RMSE",
                                                  "a": 15.0, "b": 14.5, "delta": pytest.approx(-0.5)}
    assert not any(m["key"] in ("val_n", "test_FD001_excluded") for m in result["metrics"]), "counts are no metrics"
    live = _metric(result, "live_rmse")
    assert live["group"] == "live" and live["delta"] == pytest.approx(-2.0) and "v1 4, v2 4" in result["live_note"]
    assert result["losses"]["a"]["lstm_val_loss"] == [[1, 1.5]]
    assert result["losses"]["b"]["lstm_val_loss"] == [[1, 1.5], [2, 0.75], [3, 0.5]]
    assert len(result["losses"]["b"]["xgboost_rul_regressor_train_loss"]) == 3
    lineage = {row["field"]: row for row in result["lineage"]}
    assert lineage["Training datasets"]["a"] == "train_FD001" and not lineage["Training datasets"]["same"]
    assert lineage["Engines"]["same"] and lineage["Snapshot SHA-256"]["b"] == "b-sha"


def test_compare_names_versions_by_alias_and_refuses_one_version_twice(two_versions: tuple[int, int]) -> None:
    from core.operations import promotion

    a, b = two_versions
    promotion.set_alias("champion", b)
    assert compare.compare(a, "champion")["b"]["version"] == b
    with pytest.raises(UserError, match="two different versions"):
        compare.compare(b, "champion")
    with pytest.raises(UserError, match="does not exist"):
        compare.compare(a, 99)


def test_cli_compare_prints_json_and_a_readable_table(two_versions: tuple[int, int],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_versions
    assert main(["models", "compare", str(a), str(b), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in result["parameters"]] == ["epochs"]
    assert _metric(result, "val_rmse")["delta"] == pytest.approx(-1.0)
    assert result["live_note"].startswith(("Neither version", "Live accuracy could not be read"))
    assert main(["models", "compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "epochs: 1 -> 3" in text and "Validation RMSE" in text and "-1.000" in text
    assert "Training datasets: train_FD001 | train_FD001,train_FD003" in text
    assert main(["models", "compare", str(a), "7"]) == 1
    assert "does not exist" in capsys.readouterr().err
