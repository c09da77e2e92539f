"""Issue 10: dataset roles, engines by their ids, growing in-service data, outcomes and live accuracy.

The fleet files are built from the real test_FD001: engines 1-10 with a shuffled header of C-MAPSS
mnemonics in mixed case and string engine ids, split into two files by cycle.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.cli import main as cli_main
from core.data import fleet_ops, ingest, queries, sensors, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError
from core.operations import retrain
from core.serving import scoring
from models.training import TrainConfig, train
from tests.conftest import cmapss_file

TINY = TrainConfig(epochs=1, n_trees=8, early_stopping=4, hidden=8, layers=2, samples_per_epoch=256, batch=64,
                   val_fraction=0.25, threads=1)


def _engines_1_to_10(cmapss_dir: Path) -> pd.DataFrame:
    rows = pd.read_csv(cmapss_file(cmapss_dir, "test_FD001"), sep=r"\s+", header=None, names=COLUMNS)
    return rows[rows["unit"] <= 10].reset_index(drop=True)


@pytest.fixture
def fleet_files(cmapss_dir: Path, tmp_path: Path) -> tuple[Path, Path, pd.DataFrame]:
    rows = _engines_1_to_10(cmapss_dir)
    out = pd.DataFrame({sensors.mnemonic(c): rows[c] for c in COLUMNS})
    out["engine"] = [f"ESN-{7000 + u}" for u in rows["unit"]]
    order = list(np.random.default_rng(3).permutation(out.columns))
    out = out[order]
    out.columns = [c.upper() if i % 2 else c.lower() for i, c in enumerate(out.columns)]
    half = (rows["cycle"] <= rows.groupby("unit")["cycle"].transform("max") // 2).to_numpy()
    first, second = tmp_path / "fleet_part1.csv", tmp_path / "fleet_part2.csv"
    out[half].to_csv(first, index=False)
    out[~half].to_csv(second, index=False)
    return first, second, rows


def _store_state() -> tuple:
    with store.connect(read_only=True) as con:
        return (queries.readings(con, "ops").to_numpy().tobytes(), queries.list_datasets(con)["rows"].tolist(),
                queries.engines(con, "ops")["engine"].tolist())


def test_fleet_csv_in_two_steps_scores_exactly_as_the_nasa_engines(fd001_store, fleet_files):
    first, second, rows = fleet_files
    ingest.load([first], role="fleet", dataset="ops")
    appended = ingest.load([second], dataset="ops")
    assert appended.appended[0]["readings_added"] == len(rows) - len(pd.read_csv(first))
    with store.connect(read_only=True) as con:
        info = queries.get_dataset(con, "ops")
        ids = queries.engine_ids(con, "ops")
    assert info["role"] == "fleet" and info["rows"] == len(rows)
    assert sorted(ids.values()) == [f"ESN-{7000 + u}" for u in range(1, 11)]

    frame = scoring.fleet_frame(["train_FD001"])[0]
    ensemble = train(frame[frame["unit"] <= 12], TINY).ensemble
    ours = scoring.score(ensemble, *scoring.fleet_frame(["ops"]))
    nasa = scoring.score(ensemble, *scoring.fleet_frame(["test_FD001"]))
    nasa = nasa[nasa["unit"] <= 10]
    ours = ours.assign(engine=ours["unit"].map(ids)).sort_values("engine")
    nasa = nasa.assign(engine=[f"ESN-{7000 + u}" for u in nasa["unit"]]).sort_values("engine")
    for column in ("cycle", "rul", "rul_low", "rul_high", "p_fail_30", "risk"):
        assert ours[column].tolist() == nasa[column].tolist(), column


def test_loading_again_is_a_no_op_and_a_conflict_changes_nothing(fd001_store, fleet_files, tmp_path):
    first, second, _ = fleet_files
    ingest.load([first, second], role="fleet", dataset="ops")
    before = _store_state()
    again = ingest.load([second], dataset="ops")
    assert again.readings_added == 0 and again.skipped == 1
    renamed = tmp_path / "same_rows_other_file.csv"
    renamed.write_text(second.read_text() + "\n")
    same = ingest.load([renamed], dataset="ops")
    assert same.readings_added == 0 and same.appended[0]["readings_unchanged"] > 0
    changed = pd.read_csv(second)
    t30 = next(c for c in changed.columns if c.lower() == "t30")
    changed.loc[5, t30] += 2.0
    bad = tmp_path / "conflict.csv"
    changed.to_csv(bad, index=False)
    with pytest.raises(UserError, match=r"already holds engine ESN-\d+ cycle \d+ with T30 [\d.]+, but the new "
                                        r"readings give [\d.]+; nothing was changed"):
        ingest.load([bad], dataset="ops")
    assert _store_state() == before


def test_new_cycles_must_follow_the_last_and_new_engines_are_added(fd001_store, fleet_files):
    first, second, _ = fleet_files
    ingest.load([first, second], role="fleet", dataset="ops")
    with store.connect() as con:
        rows = queries.engine_readings(con, "ops", 1)
        last = int(rows["cycle"].max())
        gap = rows.iloc[[0]].assign(cycle=last - 1000 if last > 1000 else 0)
        with pytest.raises(UserError):
            writes.append_readings(con, "ops", "user", "fleet", "test", gap.drop(columns="unit").assign(
                engine="ESN-7001"))
        later = rows.iloc[[-1]].drop(columns="unit").assign(cycle=last + 1, engine="ESN-7001")
        newcomer = rows.iloc[:3].drop(columns="unit").assign(engine="N123AB-2")
        merged = writes.append_readings(con, "ops", "user", "fleet", "test", pd.concat([later, newcomer]))
    assert merged.added == 4 and merged.new_engines == ["N123AB-2"] and merged.changed_engines == ["ESN-7001"]


def test_roles_default_from_names_and_nothing_becomes_training_data_by_accident(fd001_store, fleet_files):
    first, second, _ = fleet_files
    summary = ingest.load([first])
    assert summary.files[0].role == "fleet" and summary.files[0].name == "fleet_part1"
    assert retrain.training_datasets() == ["train_FD001"]
    with pytest.raises(UserError, match="only history datasets"):
        retrain.training_datasets(datasets=["fleet_part1"])
    with pytest.raises(UserError, match="train_FD001 is a history dataset"):
        ingest.load([second], dataset="train_FD001")


def test_failure_closes_the_engine_into_history_and_live_accuracy_reports_it(fd001_store, fleet_files):
    first, second, rows = fleet_files
    ingest.load([first, second], role="fleet", dataset="ops")
    with store.connect() as con:
        unit = {v: k for k, v in queries.engine_ids(con, "ops").items()}["ESN-7003"]
        last = int(queries.engine_readings(con, "ops", unit)["cycle"].max())
        cycles = [last - 20, last]
        predictions = pd.DataFrame({"unit": [unit, unit], "cycle": cycles, "rul": [40.0, 15.0],
                                    "rul_low": [30.0, 5.0], "rul_high": [60.0, 25.0], "p_fail_30": [0.1, 0.9],
                                    "risk": ["LOW", "HIGH"]})
        writes.insert_predictions(con, "ops", predictions, "3")
    with pytest.raises(UserError, match="before its last reading"):
        fleet_ops.record_outcome("ops", "ESN-7003", last - 1, "failure")
    with pytest.raises(UserError, match="has no engine"):
        fleet_ops.record_outcome("ops", "ESN-9999", last, "failure")
    fleet_ops.record_outcome("ops", "ESN-7003", last, "inspection", note="borescope: blade tip wear")
    closed = fleet_ops.record_outcome("ops", "ESN-7003", last + 5, "failure", model_version=3)
    assert closed["closed"] and closed["history_dataset"] == "ops-closed"
    with pytest.raises(UserError, match="already closed"):
        fleet_ops.record_outcome("ops", "ESN-7003", last + 6, "removal")
    with pytest.raises(UserError, match="was closed by a failure"):
        fleet_ops.append_readings("ops", queries_rows(unit).assign(cycle=last + 1, engine="ESN-7003"))

    with store.connect(read_only=True) as con:
        history = queries.get_dataset(con, "ops-closed")
        truth = queries.rul_truth(con, "ops-closed")
        feedback = con.execute("SELECT outcome, note, model_version FROM feedback ORDER BY created_at").fetchall()
        still = queries.readings(con, "ops")
    assert history["role"] == "history" and history["rows"] == last
    assert truth["rul"].tolist() == [5]
    assert feedback == [("inspection", "borescope: blade tip wear", None), ("failure", None, "3")]
    assert len(still) == len(rows)
    assert "ops-closed" in retrain.training_datasets()

    report = fleet_ops.live_accuracy()
    assert report["engines"] == 1 and report["predictions"] == 2
    (line,) = report["by_version"]
    realised = np.minimum([25.0, 5.0], 125)
    assert line["rmse"] == pytest.approx(np.sqrt(np.mean((np.array([40.0, 15.0]) - realised) ** 2)))
    assert line["coverage"] == pytest.approx(0.5) and line["high_recall"] == pytest.approx(0.5)
    assert line["high_precision"] == pytest.approx(1.0)


def queries_rows(unit: int) -> pd.DataFrame:
    with store.connect(read_only=True) as con:
        return queries.engine_readings(con, "ops", unit).iloc[[-1]].drop(columns="unit")


def test_cli_ingest_datasets_outcome_and_accuracy(fd001_store, fleet_files, capsys):
    first, second, _ = fleet_files
    assert cli_main(["ingest", str(first), str(second), "--role", "fleet", "--dataset", "ops", "--json"]) == 0
    capsys.readouterr()
    assert cli_main(["datasets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["datasets"]
    assert {d["name"]: d["role"] for d in listed} == {
        "train_FD001": "history", "test_FD001": "evaluation", "ops": "fleet"}
    with store.connect(read_only=True) as con:
        last = int(queries.engines(con, "ops").set_index("engine").at["ESN-7001", "last_cycle"])
    assert cli_main(["outcome", "--dataset", "ops", "--engine", "ESN-7001", "--cycle", str(last),
                     "--event", "removal"]) == 0
    assert "closed" in capsys.readouterr().out
    assert cli_main(["outcome", "--dataset", "ops", "--engine", "ESN-7001", "--cycle", str(last),
                     "--event", "failure"]) == 1
    assert "already closed" in capsys.readouterr().err
    assert cli_main(["accuracy"]) == 0
    assert "No closed engine has stored predictions" in capsys.readouterr().out


def test_a_schema_1_store_is_migrated(schema_1_store):
    with store.connect() as con:
        listing = queries.list_datasets(con)
        shas = queries.known_sha256(con)
    assert listing["role"].tolist() == ["history"] and shas == {"abc": "train_FD001"}


def test_a_closed_engine_trains_with_its_realised_end_of_life(fd001_store, fleet_files):
    from core.data import snapshot
    from core.data.features import FeaturePipeline
    from models.training import end_of_life_offsets, prepared_targets

    first, second, _ = fleet_files
    ingest.load([first, second], role="fleet", dataset="ops")
    with store.connect(read_only=True) as con:
        last = int(queries.engines(con, "ops").set_index("engine").at["ESN-7004", "last_cycle"])
    fleet_ops.record_outcome("ops", "ESN-7004", last + 7, "failure")
    with store.connect(read_only=True) as con:
        snap = snapshot.export(con, retrain.training_datasets())
    _, rows, _, _ = snapshot.read(snap.path)
    closed = rows[rows["dataset"] == "ops-closed"]
    assert len(closed) == last and set(closed[snapshot.END_OF_LIFE_COLUMN]) == {7.0}
    assert set(rows.loc[rows["dataset"] == "train_FD001", snapshot.END_OF_LIFE_COLUMN]) == {0.0}
    offsets = end_of_life_offsets(rows)
    assert offsets == {("ops-closed", 1): 7.0}
    prep = FeaturePipeline().fit(rows).prepare(closed)
    _, rul_true, _ = prepared_targets(prep, 125.0, offsets)
    assert rul_true[-1] == 7.0 and rul_true[0] == last - 1 + 7
