"""Registered versions in words: metric labels, which keys count as validation metrics, creators."""

from __future__ import annotations

from core.operations import version_table


def test_metric_labels_read_as_words_including_per_member_keys() -> None:
    assert version_table.metric_label("val_rmse") == "Validation RMSE"
    assert version_table.metric_label("val_rmse_xgb") == "Validation RMSE (XGBoost)"
    assert version_table.metric_label("val_rmse_lstm") == "Validation RMSE (LSTM)"
    assert version_table.metric_label("test_FD002_phm08") == "Test FD002 PHM08 score"
    assert version_table.metric_label("val_blend_weight") == "Validation blend weight"


def test_validation_keys_put_the_headline_first_and_skip_other_metrics() -> None:
    columns = ["lstm_val_loss", "val_rmse_lstm", "val_f2", "test_FD001_rmse", "val_rmse", "train_seconds",
               "val_rmse_xgb", "val_blend_weight"]
    assert version_table.validation_keys(columns) == ["val_rmse", "val_rmse_lstm", "val_rmse_xgb", "val_f2",
                                                      "val_blend_weight"]
    assert version_table.test_keys(columns) == ["test_FD001_rmse"]


def test_creator_labels() -> None:
    assert [version_table.creator_label(c) for c in ("cli", "setup", "dashboard", "simulation 2026-x", "api", "")] == [
        "CLI", "setup", "dashboard", "simulation", "api", "unknown"]
