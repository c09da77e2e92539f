"""Retraining through the background job runner, on a slice of the real FD001 files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.data import snapshot, store
from core.errors import UserError
from core.operations import jobs, registry, retrain
from models.training import TrainConfig

REPO = Path(__file__).resolve().parent.parent
TINY = {"epochs": 1, "n_trees": 10, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu", "seed": 3}


def _config() -> TrainConfig:
    return TrainConfig.from_dict({**TrainConfig().to_dict(), **TINY})


@pytest.mark.slow
def test_retrain_job_reports_progress_and_registers_a_champion(small_fd001: Path) -> None:
    registry.init()
    snap = retrain.export_snapshot(retrain.training_datasets())
    assert snap.datasets == ["train_FD001"] and snap.test_datasets == ["test_FD001"]
    job = retrain.start_job(snap, _config(), created_by="test")
    done = jobs.wait(job.id, timeout_s=600)
    assert done.state == "succeeded", (done.error, done.log_tail[-10:])
    assert done.result["version"] == 1 and done.result["promoted"] is True
    assert done.device == "cpu"
    assert any(entry["phase"] == "lstm" for entry in done.losses)
    assert "test_FD001_rmse" in done.result["metrics"]
    assert registry.champion_version() == 1
    versions = registry.list_versions()
    assert versions.loc[0, "data"] == "train_FD001"


@pytest.mark.slow
def test_a_crashing_job_leaves_the_champion_and_says_why(small_fd001: Path) -> None:
    registry.init()
    snap = retrain.export_snapshot(["train_FD001"])
    broken = snap.path.parent / "broken"
    shutil.copytree(snap.path, broken)
    (broken / "train.parquet").write_bytes(b"not parquet")
    job = retrain.start_job(snapshot.Snapshot(broken, snap.sha256, snap.datasets, [], 0, 0), _config())
    done = jobs.wait(job.id, timeout_s=120)
    assert done.state == "failed"
    assert "snapshot" in done.error and "unreadable" in done.error
    assert registry.champion_version() is None


def test_a_bad_gate_tolerance_is_refused_before_any_training(small_fd001: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from core import cli
    from core.operations import training_run

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a training started although a gate tolerance is malformed")

    monkeypatch.setattr(training_run, "train", must_not_run)
    monkeypatch.setattr(jobs, "start", must_not_run)
    monkeypatch.setenv("PM_GATE_RMSE_TOL", "5%")
    assert cli.main(["train", "--epochs", "1", "--trees", "10"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == ("error: PM_GATE_RMSE_TOL is '5%', which is not accepted: set it to a number from 0 up to (not "
                     "including) 1, the relative validation RMSE increase allowed, a fraction such as 0.05 for 5%. "
                     "No training was started.")
    snap = retrain.export_snapshot(["train_FD001"])
    with pytest.raises(UserError, match="PM_GATE_RMSE_TOL is '5%'"):
        retrain.start_job(snap, _config())
    with pytest.raises(UserError, match="PM_GATE_RMSE_TOL is '5%'"):
        training_run.run_training(snap.path, _config())
    assert jobs.list_jobs() == [], "no job record was written"


def test_test_sets_are_never_training_data(small_fd001: Path) -> None:
    with store.connect(read_only=True) as con, pytest.raises(UserError, match="reporting only"):
        snapshot.export(con, ["test_FD001"])


def _slot_of(proc: subprocess.Popen) -> jobs.JobRecord | None:
    """The active training record held by `proc` once it has taken the slot; None if it ends without one."""
    while proc.poll() is None:
        busy = jobs.running()
        if busy is not None and busy.pid == proc.pid:
            return busy
        time.sleep(0.2)
    return None


@pytest.mark.slow
def test_cli_train_and_score(small_fd001: Path, tmp_path: Path) -> None:
    with open(tmp_path / "train.err", "w+") as progress:
        train = subprocess.Popen(
            [sys.executable, "-m", "core", "train", "--subsets", "FD001", "--epochs", "1", "--trees", "10", "--json"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=progress, text=True,
        )
        slot = _slot_of(train)
        second = subprocess.run([sys.executable, "-m", "core", "train", "--subsets", "FD001", "--epochs", "1"],
                                cwd=REPO, capture_output=True, text=True, timeout=600, check=False) if slot else None
        stdout, _ = train.communicate(timeout=600)
        progress.seek(0)
        stderr = progress.read()
    assert slot is not None and second is not None, "the foreground training never took the single-training slot"
    assert second.returncode == 1 and len(second.stderr.strip().splitlines()) == 1, second.stderr[-2000:]
    assert f"A training job is already running (job {slot.id}" in second.stderr
    assert f"process {train.pid})" in second.stderr
    assert train.returncode == 0, stderr
    result = json.loads(stdout)
    assert result["job"] == slot.id and jobs.get(slot.id).state == "succeeded"
    assert result["version"] == 1 and result["promoted"]
    metrics = result["metrics"]
    for key in ("val_rmse", "val_rmse_xgb", "val_rmse_lstm", "test_FD001_rmse", "test_FD001_rmse_xgb",
                "test_FD001_rmse_lstm"):
        assert isinstance(metrics[key], float), key
    assert set(metrics["weights"]) == {"rul_xgb", "p_xgb"} and 0 <= metrics["weights"]["rul_xgb"] <= 1
    logged = registry.version_metrics(1)
    assert logged["weight_rul_xgb"] == metrics["weights"]["rul_xgb"]
    assert logged["test_FD001_rmse_lstm"] == pytest.approx(metrics["test_FD001_rmse_lstm"])
    score = subprocess.run(
        [sys.executable, "-m", "core", "score", "--dataset", "test_FD001", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )
    assert score.returncode == 0, score.stderr
    engines = json.loads(score.stdout)["engines"]
    assert [e["engine"] for e in engines] == ["1", "2", "3", "4", "5", "6"]
    assert json.loads(score.stdout)["out_of_experience"] == 0
    for e in engines:
        assert e["ood"] is False and e["ood_reason"] == ""
        assert e["rul_low"] <= e["rul"] <= e["rul_high"]
        assert 0.0 <= e["p_fail_30"] <= 1.0 and e["risk"] in ("LOW", "MEDIUM", "HIGH")
    with store.connect(read_only=True) as con:
        recorded = con.execute("SELECT count(*), min(model_version) FROM predictions").fetchone()
    assert recorded == (6, "1")


@pytest.mark.slow
def test_cli_train_refuses_missing_data_with_one_sentence(pm_home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "core", "train", "--subsets", "FD003"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert out.stderr.strip().startswith("error: ") and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["jobs", "snapshots"])
def test_cli_background_training_on_an_unwritable_home_says_why(small_fd001: Path, folder: str) -> None:
    """A file where the folder should be stands for any unwritable PM_HOME (root ignores permission bits)."""
    shutil.rmtree(small_fd001 / folder, ignore_errors=True)
    (small_fd001 / folder).write_text("in the way")
    out = subprocess.run([sys.executable, "-m", "core", "train", "--background"], cwd=REPO, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert f"{small_fd001 / folder}" in out.stderr and "PM_HOME must be writable to train." in out.stderr
