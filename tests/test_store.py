"""Store: schema, typed reads, stream appends, deletes, predictions, and the lock message."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from core import config
from core.data import queries, store, writes
from core.data.cmapss import COLUMNS
from core.errors import UserError
from tests.conftest import REPO_ROOT


def frame_of(lines: list[str]) -> pd.DataFrame:
    return pd.DataFrame([[float(v) for v in line.split()] for line in lines], columns=COLUMNS)


def test_schema_is_created_and_read_only_needs_a_file(pm_home: Path) -> None:
    with pytest.raises(UserError, match="does not exist yet; load data first"), store.connect(read_only=True):
        pass
    with store.connect() as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"datasets", "readings", "rul_truth", "predictions", "feedback"} <= tables
    with store.connect(read_only=True) as con:
        assert queries.list_datasets(con).empty
        assert queries.dataset_names(con) == []
        with pytest.raises(UserError, match=r"^No dataset named 'nope' is loaded\.$"):
            queries.get_dataset(con, "nope")


def test_reads_after_fd001_load(fd001_store: Path) -> None:
    with store.connect(read_only=True) as con:
        assert queries.dataset_names(con) == ["train_FD001", "test_FD001"]
        assert queries.dataset_names(con, role="evaluation") == ["test_FD001"]
        listing = queries.list_datasets(con)
        train = queries.readings(con, "train_FD001")
        both = queries.readings_many(con, ["test_FD001", "train_FD001"])
        truth = queries.rul_truth(con, "test_FD001")
        no_truth = queries.rul_truth(con, "train_FD001")
    assert list(listing.columns) == ["id", "name", "subset", "role", "source", "sha256", "rows", "engines",
                                     "loaded_at", "last_loaded_at", "closed", "has_truth"]
    assert listing["has_truth"].tolist() == [False, True]
    assert len(train) == 20_631 and train["unit"].nunique() == 100
    assert train[["unit", "cycle"]].equals(train[["unit", "cycle"]].sort_values(["unit", "cycle"]))
    assert list(both.columns) == ["dataset", *COLUMNS]
    assert both["dataset"].iloc[0] == "test_FD001" and len(both) == 20_631 + 13_096
    assert (len(truth), truth["rul"].iloc[0]) == (100, 112)
    assert no_truth.empty and list(no_truth.columns) == ["unit", "rul"]


def test_stream_append_validates_and_is_atomic(pm_home: Path, cmapss_slice) -> None:
    lines = cmapss_slice("train_FD001", 2)
    frame = frame_of(lines)
    first, rest = frame[frame.cycle <= 5], frame[frame.cycle > 5]
    with store.connect() as con:
        assert writes.append_readings(con, "live", "FD001", "sandbox", "simulation", first).added == len(first)
        assert writes.append_readings(con, "live", "FD001", "sandbox", "simulation", rest).added == len(rest)
        assert queries.get_dataset(con, "live")["rows"] == len(frame)
        with pytest.raises(UserError, match="already holds engine 1 up to cycle .*cycle 3 cannot be appended"):
            writes.append_readings(con, "live", "FD001", "sandbox", "simulation", frame.iloc[2:3])
        bad = frame.iloc[:1].assign(cycle=10_000, sensor_2=float("nan"))
        with pytest.raises(UserError, match=r"Dataset 'live' row 1: T24 \(sensor_2\) is missing"):
            writes.append_readings(con, "live", "FD001", "sandbox", "simulation", bad)
        assert len(queries.readings(con, "live")) == len(frame)


def test_create_dataset_refuses_taken_name_and_bad_role(pm_home: Path, cmapss_slice) -> None:
    frame = frame_of(cmapss_slice("train_FD001", 1))
    with store.connect() as con:
        writes.create_dataset(con, "mine", "user", "history", "test", frame)
        with pytest.raises(UserError, match="already loaded; delete it first"):
            writes.create_dataset(con, "mine", "user", "history", "test", frame)
        with pytest.raises(UserError, match="Role 'weird' is not one of history, fleet, evaluation"):
            writes.create_dataset(con, "other", "user", "weird", "test", frame)
        assert queries.dataset_names(con) == ["mine"]


def test_predictions_and_delete(fd001_store: Path) -> None:
    preds = pd.DataFrame({"unit": [1, 2], "cycle": [31, 49], "rul": [100.0, 90.0], "rul_low": [80.0, 70.0],
                          "rul_high": [120.0, 110.0], "p_fail_30": [0.01, 0.02], "risk": ["low", "low"]})
    with store.connect() as con:
        assert writes.insert_predictions(con, "test_FD001", preds, "3") == 2
        con.execute("INSERT INTO feedback VALUES (now(), (SELECT id FROM datasets WHERE name = 'test_FD001'), 1, 31, "
                    "'inspection', 'borescope fine', '3')")
        writes.delete_dataset(con, "test_FD001")
        counts = con.execute("SELECT (SELECT count(*) FROM predictions), (SELECT count(*) FROM feedback), "
                             "(SELECT count(*) FROM rul_truth), (SELECT count(*) FROM truth_files), "
                             "(SELECT count(*) FROM engines e JOIN datasets d ON d.id = e.dataset_id)").fetchall()[0]
        assert counts == (0, 0, 0, 0, 100)
        assert queries.dataset_names(con) == ["train_FD001"]


def test_lock_held_by_another_process_gives_a_sentence(pm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with store.connect():
        pass
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
         " time.sleep(30)"), str(config.paths().duckdb)],
        stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env={**os.environ},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("PM_DB_LOCK_WAIT_S", "0.3")
        started = time.monotonic()
        with pytest.raises(UserError, match="is in use by another process"), store.connect(read_only=True):
            pass
        assert time.monotonic() - started >= 0.3
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("value", ["soon", "-1"])
def test_a_wrong_lock_wait_is_a_sentence(pm_home: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PM_DB_LOCK_WAIT_S", value)
    with pytest.raises(UserError, match=f"PM_DB_LOCK_WAIT_S is '{value}'.*at least 0"):
        store.lock_wait_s()


def test_write_retries_a_conflict_and_then_says_a_sentence(pm_home: Path) -> None:
    import duckdb

    attempts: list[int] = []

    def conflicting(times: int):
        def operation(con) -> int:
            attempts.append(1)
            if len(attempts) <= times:
                raise duckdb.TransactionException("TransactionContext Error: Conflict on tuple deletion!")
            return len(attempts)
        return operation

    assert store.write(conflicting(2)) == 3
    attempts.clear()
    with pytest.raises(UserError) as refused:
        store.write(conflicting(99))
    assert str(refused.value) == store.CONFLICT and len(attempts) == 3


def test_a_duplicate_inside_a_write_is_a_sentence_and_changes_nothing(pm_home: Path, cmapss_slice) -> None:
    frame = frame_of(cmapss_slice("train_FD001", 1))
    with store.connect() as con:
        writes.create_dataset(con, "mine", "user", "history", "test", frame)
    with (pytest.raises(UserError, match=r"^The change would store a second copy of data .*; nothing was changed\.$"),
          store.connect() as con, store.transaction(con)):
        con.execute("DELETE FROM readings WHERE cycle = 1")
        con.execute("INSERT INTO datasets (name, subset, role, source, loaded_at) VALUES ('mine', 'u', "
                    "'history', 'x', now())")
    with store.connect(read_only=True) as con:
        assert queries.get_dataset(con, "mine")["rows"] == len(frame) == len(queries.readings(con, "mine"))


def test_an_engine_id_closed_before_a_reload_is_refused_with_a_sentence(pm_home: Path, cmapss_slice) -> None:
    from core.data import fleet_ops

    frame = frame_of(cmapss_slice("test_FD001", 1))
    rows = frame.drop(columns="unit").assign(engine="ESN-1")
    fleet_ops.append_readings("ops", rows)
    fleet_ops.record_outcome("ops", "ESN-1", 500, "failure")
    with store.connect() as con:
        writes.delete_dataset(con, "ops")
    fleet_ops.append_readings("ops", rows)
    with pytest.raises(UserError, match=r"^The history dataset 'ops-closed' already holds an engine ESN-1 closed "):
        fleet_ops.record_outcome("ops", "ESN-1", 500, "removal")
    with store.connect(read_only=True) as con:
        assert queries.engines(con, "ops")["closed_event"].isna().all()
        assert len(queries.engines(con, "ops-closed")) == 1
