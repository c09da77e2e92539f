"""Issue 23: the operational loop holds when an evaluation engine fails and the fleet is retrained.

Training data is chosen by role and lineage, never by name: a failure recorded on an evaluation engine turns it
into history (``test_FD001-closed``), the default retrain takes it, and the new model's test figures leave that
engine out. Engines are named by the operator's ids on the command line and counted once. Built on the first 12
training and 6 test engines of the real FD001 (``small_fd001``), trained with a tiny config.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core import cli
from core.data import fleet_ops, queries, snapshot, store, writes
from core.operations import jobs, registry, retrain
from core.operations.training_run import run_training
from models.bundle import load_bundle
from models.training import TrainConfig, evaluate

TINY = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu", "seed": 3}


def _config() -> TrainConfig:
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY})


def _fail(dataset: str, engine: str, after: int = 5) -> dict:
    """Record a failure `after` cycles past the engine's last reading."""
    with store.connect(read_only=True) as con:
        last = int(queries.find_engine(con, dataset, engine)["last_cycle"])
    return fleet_ops.record_outcome(dataset, engine, last + after, "failure")


@pytest.mark.slow
def test_retrain_after_a_failure_on_an_evaluation_engine_leaves_it_out_of_the_test_figures(small_fd001: Path) -> None:
    registry.init()
    assert _fail("test_FD001", "4")["history_dataset"] == "test_FD001-closed"

    names = retrain.training_datasets()
    assert names == ["test_FD001-closed", "train_FD001"], "closed engines are history wherever they came from"
    assert retrain.selection() == (names, names), "the Models page's default is exactly what training takes"
    snap = retrain.export_snapshot(names)
    assert snap.sources == ["test_FD001/4"] and snap.test_datasets == ["test_FD001"]

    done = jobs.wait(retrain.start_job(snap, _config(), created_by="test").id, timeout_s=600)
    assert done.state == "succeeded", (done.error, done.log_tail[-10:])
    metrics = done.result["metrics"]
    assert metrics["test_FD001_excluded"] == 1 and metrics["test_FD001_n"] == 5
    assert registry.version_metrics(done.result["version"])["test_FD001_excluded"] == 1

    ensemble = load_bundle(registry.bundle_dir(done.result["version"]))
    assert ensemble.meta["trained_on"]["in_service_engines"] == [{"dataset": "test_FD001", "engine": "4", "unit": 4}]
    _, _, test_rows, truth = snapshot.read(snap.path)
    others = evaluate(ensemble, test_rows[test_rows["unit"] != 4], truth)
    assert others["excluded"] == 0 and others["n"] == 5
    assert metrics["test_FD001_rmse"] == pytest.approx(others["rmse"]), "the figure is the other five engines'"


def test_core_score_names_engines_by_the_operators_ids(small_fd001: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with store.connect(read_only=True) as con:
        rows = queries.readings_of_engines(con, "test_FD001", [1, 2, 3])
    fleet_ops.append_readings("line-a", rows.drop(columns="dataset").assign(
        engine=rows["unit"].map(lambda u: f"ESN-{7000 + u}")).drop(columns="unit"))
    registry.init()
    run_training(retrain.export_snapshot(["train_FD001"]).path, _config())

    assert cli.main(["score", "--dataset", "line-a", "--json"]) == 0
    engines = json.loads(capsys.readouterr().out)["engines"]
    assert [e["engine"] for e in engines] == ["ESN-7001", "ESN-7002", "ESN-7003"]
    assert all("unit" not in e for e in engines), "the store's internal numbers are not shown"

    assert cli.main(["score", "--dataset", "line-a", "--no-record"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[1].split()[0] == "engine" and [line.split()[0] for line in text[2:5]] == [
        "ESN-7001", "ESN-7002", "ESN-7003"]


def test_engines_are_counted_once(small_fd001: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fail("test_FD001", "2")
    with store.connect(read_only=True) as con:
        assert int(queries.list_datasets(con)["engines"].sum()) == 19, "the closed copy is a history engine"
        assert queries.engine_count(con) == 18
    assert cli.main(["datasets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engines"] == 18
    with store.connect() as con:
        writes.delete_dataset(con, "test_FD001")
    with store.connect(read_only=True) as con:
        assert queries.engine_count(con) == 13, "once its source is deleted, the copy is the engine's only record"


def test_live_accuracy_counts_only_predictions_made_before_the_outcome(small_fd001: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def predict(version: str) -> None:
        with store.connect() as con:
            last = int(queries.find_engine(con, "test_FD001", "3")["last_cycle"])
            writes.insert_predictions(con, "test_FD001", pd.DataFrame({
                "unit": [3], "cycle": [last], "rul": [20.0], "rul_low": [10.0], "rul_high": [30.0],
                "p_fail_30": [0.8], "risk": ["HIGH"]}), version)

    predict("1")
    closed = _fail("test_FD001", "3", after=12)
    predict("2")  # e.g. a model trained on the engine's closed copy, scoring it afterwards
    report = fleet_ops.live_accuracy()
    assert [line["model_version"] for line in report["by_version"]] == ["1"]
    assert report["by_engine"] == [{"dataset": "test_FD001", "engine": "3", "closed_cycle": closed["cycle"],
                                    "predictions": 1, "versions": ["1"]}]
    assert cli.main(["accuracy"]) == 0
    assert "Closed engines: 3 of test_FD001 (closed at cycle" in capsys.readouterr().out


def test_a_store_closed_before_lineage_was_kept_gets_it_at_upgrade(small_fd001: Path) -> None:
    _fail("test_FD001", "5")
    with store.connect() as con:
        con.execute("DELETE FROM engine_sources")
        con.execute("UPDATE store_meta SET value = '3' WHERE key = 'schema_version'")
    with store.connect() as con:
        sources = queries.engine_sources(con, ["test_FD001-closed"])
    assert sources[["dataset", "unit", "source_dataset", "source_engine", "source_unit"]].values.tolist() == [
        ["test_FD001-closed", 1, "test_FD001", "5", 5]]
