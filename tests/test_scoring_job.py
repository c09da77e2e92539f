"""Scores computed once: the scoring job scores only engines with new readings, everything again when the
champion changes, in batches that give the same scores, as a background job with progress; the fleet table
is filtered, ordered, paged and counted in SQL from the stored scores."""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest
from api_support import build_trained_home

from core.commands import synth as synth_command
from core.data import fleet_ops, ingest, queries, score_queries, store
from core.errors import UserError
from core.operations import jobs, registry, scoring_job
from tests.conftest import trains

ALL_RISKS = ("HIGH", "MEDIUM", "LOW")


@pytest.fixture(scope="module")
@trains
def trained(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> Path:
    """FD001 and a tiny champion, plus a synthetic fleet of 50 engines (role fleet), nothing scored yet."""
    home = build_trained_home(tmp_path_factory.mktemp("scoring") / "home", cmapss_dir)
    out = tmp_path_factory.mktemp("synth") / "synthetic_fleet.csv"
    synth_command.run(argparse.Namespace(engines=50, seed=4, out=out, format=None, data=cmapss_dir))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PM_HOME", str(home))
        ingest.load([out])
    return home


@pytest.fixture
def home(trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    copy = Path(shutil.copytree(trained, tmp_path / "home"))
    monkeypatch.setenv("PM_HOME", str(copy))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(var, raising=False)
    return copy


def _in_service() -> int:
    with store.connect(read_only=True) as con:
        return int(con.execute("SELECT count(*) FROM engines e JOIN datasets d ON d.id = e.dataset_id WHERE "
                               "e.closed_event IS NULL AND d.role IN ('fleet', 'evaluation')").fetchall()[0][0])


def _stored(version: int) -> pd.DataFrame:
    with store.connect(read_only=True) as con:
        return con.execute("SELECT dataset_id, unit, cycle, rul, p_fail_30 FROM predictions WHERE model_version = ? "
                           "ORDER BY dataset_id, unit, cycle", [str(version)]).df()


def _append_one_cycle(dataset: str, engines: list[str]) -> None:
    with store.connect(read_only=True) as con:
        ids = {v: k for k, v in queries.engine_ids(con, dataset).items()}
        rows = [queries.engine_readings(con, dataset, ids[e]).tail(1).assign(engine=e) for e in engines]
    frame = pd.concat(rows, ignore_index=True)
    fleet_ops.append_readings(dataset, frame.assign(cycle=frame["cycle"] + 1).drop(columns="unit"))


def test_the_job_scores_only_engines_with_new_readings(home: Path) -> None:
    total = _in_service()
    first = scoring_job.score_stale()
    assert first["engines"] == total == 150 and first["model_version"] == 1, "test_FD001 and the synthetic fleet"
    assert len(_stored(1)) == total
    assert scoring_job.score_stale()["engines"] == 0, "nothing changed, nothing is scored"
    _append_one_cycle("synthetic_fleet", ["ESN-000003", "ESN-000017", "ESN-000042"])
    with store.connect(read_only=True) as con:
        stale = score_queries.stale_engines(con, 1)
    assert sorted(stale["unit"]) == [3, 17, 42] and set(stale["dataset"]) == {"synthetic_fleet"}
    again = scoring_job.score_stale()
    assert again["engines"] == 3
    stored = _stored(1)
    assert len(stored) == total + 3
    with store.connect(read_only=True) as con:
        assert score_queries.stale_count(con, 1) == 0


def test_a_new_champion_scores_every_engine_again(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scoring_job.score_stale()
    bundle = registry.bundle_dir(1)
    monkeypatch.setattr(registry, "champion_version", lambda name=None: 2)
    monkeypatch.setattr(registry, "bundle_dir", lambda version: bundle)
    result = scoring_job.score_stale()
    assert result["model_version"] == 2 and result["engines"] == _in_service()
    assert len(_stored(2)) == _in_service() and len(_stored(1)) == _in_service()


def test_batches_give_the_same_scores_as_one_pass(home: Path, tmp_path: Path, trained: Path) -> None:
    small = scoring_job.score_stale(batch=7)
    assert small["batches"] == 15 + 8, "100 + 50 engines in batches of 7, datasets never mixed"
    batched = _stored(1)
    with store.connect() as con:
        con.execute("DELETE FROM predictions")
    scoring_job.score_stale()
    whole = _stored(1)
    pd.testing.assert_frame_equal(batched, whole)


def test_the_fleet_table_carries_and_filters_the_out_of_experience_flag(home: Path) -> None:
    """The FD001 champion knows one operating regime: the synthetic fleet's engines from the other subsets are
    flagged (with a reason) and test_FD001's are not; the experience filter splits the table exactly."""

    scoring_job.score_stale()
    everything = score_queries.FleetFilter(("test_FD001", "synthetic_fleet"), ALL_RISKS, (0.0, 125.0))
    with store.connect(read_only=True) as con:
        table = score_queries.fleet_all(con, 1, everything)
        summary = score_queries.fleet_summary(con, 1, everything)
        outside = score_queries.fleet_all(con, 1, dataclasses.replace(everything, experience="outside"))
        within = score_queries.fleet_all(con, 1, dataclasses.replace(everything, experience="within"))
    assert not table.loc[table["dataset"] == "test_FD001", "ood"].any()
    flagged = table[table["ood"]]
    assert 0 < len(flagged) <= 50 and set(flagged["dataset"]) == {"synthetic_fleet"}
    assert (flagged["ood_reason"].str.len() > 20).all() and (table.loc[~table["ood"], "ood_reason"] == "").all()
    assert summary["ood"] == len(flagged) == len(outside) and outside["ood"].all()
    assert len(within) == len(table) - len(flagged) and not within["ood"].any()
    with pytest.raises(UserError, match="experience filter"):
        dataclasses.replace(everything, experience="maybe")


def test_the_background_job_records_progress_and_one_runs_at_a_time(home: Path) -> None:
    job = scoring_job.start(created_by="test")
    assert job is not None and job.kind == scoring_job.KIND and not job.exclusive
    assert scoring_job.start(created_by="test").id == job.id, "a second start returns the running job"
    done = jobs.wait(job.id, timeout_s=300)
    assert done.state == "succeeded", (done.error, done.log_tail)
    assert done.result["engines"] == _in_service() and done.progress == 1.0
    assert any("scored" in line for line in done.log_tail)
    assert scoring_job.start(created_by="test") is None, "nothing is stale any more"


def test_the_fleet_table_is_filtered_ordered_paged_and_counted_in_sql(home: Path) -> None:
    scoring_job.score_stale()
    everything = score_queries.FleetFilter(("test_FD001", "synthetic_fleet"), ALL_RISKS, (0.0, 125.0))
    with store.connect(read_only=True) as con:
        table = score_queries.fleet_all(con, 1, everything)
        summary = score_queries.fleet_summary(con, 1, everything)
        pages = [score_queries.fleet_page(con, 1, everything, offset, 40) for offset in range(0, 160, 40)]
        low = score_queries.fleet_summary(con, 1, score_queries.FleetFilter(everything.datasets, ("LOW",),
                                                                               (20.0, 90.0)))
        found = score_queries.fleet_all(con, 1, score_queries.FleetFilter(everything.datasets, ALL_RISKS,
                                                                            (0.0, 125.0), " esn-00001"))
        sample = score_queries.fleet_sample(con, 1, everything, 30)
        again = score_queries.fleet_sample(con, 1, everything, 30)
    assert len(table) == summary["engines"] == 150 and summary["with_truth"] == 100
    assert sum(summary[level] for level in ALL_RISKS) == 150
    rank = table["risk"].map({"HIGH": 0, "MEDIUM": 1, "LOW": 2})
    assert rank.is_monotonic_increasing
    for _, level in table.groupby(rank):
        assert level["p_fail_30"].is_monotonic_decreasing
    pd.testing.assert_frame_equal(pd.concat(pages, ignore_index=True), table)
    expected_low = table[(table["risk"] == "LOW") & table["rul"].between(20.0, 90.0)]
    assert low["engines"] == len(expected_low) and low["HIGH"] == 0
    assert sorted(found["engine"]) == [f"ESN-{i:06d}" for i in range(10, 20)]
    assert len(sample) == 30 and sample["engine"].tolist() == again["engine"].tolist()
