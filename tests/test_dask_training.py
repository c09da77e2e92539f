"""Training the XGBoost member on a Dask cluster (``core train --dask``), on a two-worker LocalCluster and FD001."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from distributed import LocalCluster

from core.data import snapshot
from core.errors import UserError
from core.operations import dask_training, registry, retrain
from models.bundle import load_bundle
from models.training import TrainConfig, evaluate, train

TINY = {"epochs": 1, "n_trees": 100, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu", "seed": 3}
RMSE_TOLERANCE = 0.5
"""How far the Dask-trained model's test RMSE may be from a local training's (issue 15)."""


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    """Two single-threaded workers. In-process (``processes=False``) to keep the test short: XGBoost still
    trains as two ranks that merge their histograms, each on its own partitions of the snapshot."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local:
        yield local


@pytest.mark.slow
def test_dask_training_registers_a_model_that_scores_like_a_local_one(fd001_store: Path,
                                                                        cluster: LocalCluster) -> None:
    registry.init()
    snap = retrain.export_snapshot(["train_FD001"])
    config = TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY})

    result = dask_training.run_dask_training(snap.path, config, cluster.scheduler_address)

    assert result["version"] == 1 and result["promoted"] is True
    assert result["dask"] == {"scheduler": cluster.scheduler_address, "workers": 2, "uploaded": False}
    assert registry.champion_version() == 1
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags["xgboost_training"].startswith("xgboost.dask on 2 Dask worker")
    assert run.data.tags["lstm_training"].startswith("single node")
    assert run.data.tags["snapshot_sha256"] == snap.sha256
    logged = registry.version_metrics(1)
    assert logged["test_FD001_rmse"] == pytest.approx(result["metrics"]["test_FD001_rmse"])

    _, train_rows, test_rows, truth = snapshot.read(snap.path)
    local = evaluate(train(train_rows, config).ensemble, test_rows, truth)
    dask_rmse = result["metrics"]["test_FD001_rmse"]
    assert abs(dask_rmse - local["rmse"]) <= RMSE_TOLERANCE, (dask_rmse, local["rmse"])
    assert abs(result["metrics"]["test_FD001_rmse_xgb"] - local["rmse_xgb"]) <= RMSE_TOLERANCE
    assert result["metrics"]["test_FD001_rmse_lstm"] == pytest.approx(local["rmse_lstm"])

    served = load_bundle(registry.bundle_dir(1))
    assert evaluate(served, test_rows, truth)["rmse"] == pytest.approx(dask_rmse)


def test_an_unreachable_scheduler_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dask_training, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(UserError, match=r"^Could not reach the Dask scheduler at tcp://127.0.0.1:9: "):
        dask_training.connect("tcp://127.0.0.1:9")
