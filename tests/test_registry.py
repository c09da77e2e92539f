"""MLflow registry: runs are logged and registered, the gate keeps worse models out, aliases move."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.errors import UserError
from core.operations import gate, promotion, registry, run_logging, run_recovery

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def _log(tmp_path: Path, tag: str, metrics: dict[str, float]) -> int:
    bundle = tmp_path / f"bundle-{tag}"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"tag": tag}))
    _, version = run_logging.log_training(
        bundle_dir=bundle,
        params={"epochs": 1},
        metrics=metrics,
        history=[{"phase": "lstm", "epoch": 1, "train_loss": 0.5, "val_loss": 0.6}],
        lineage={"sha256": "abc", "datasets": "train_FD001"},
        tags={"device": "cpu"},
    )
    return version


def test_gate_rules() -> None:
    rules = gate.GateRules()
    champion = {"val_rmse": 14.0, "val_f2": 0.8}
    assert gate.gate({"val_rmse": 13.0, "val_f2": 0.8}, champion, rules)[0]
    assert not gate.gate({"val_rmse": 14.5, "val_f2": 0.9}, champion, rules)[0]
    assert not gate.gate({"val_rmse": 13.0, "val_f2": 0.7}, champion, rules)[0]
    assert gate.gate({"val_rmse": 14.5, "val_f2": 0.8}, champion, gate.GateRules(rmse_tolerance=0.05))[0]
    assert gate.gate({"val_rmse": 99.0, "val_f2": 0.0}, None, rules)[0]
    promoted, reason = gate.gate({"val_rmse": 13.0}, champion, rules)
    assert not promoted and "missing" in reason


@pytest.mark.parametrize("value", ["5%", "-0.1", "abc", "nan", "1.5"])
def test_a_malformed_gate_tolerance_is_a_sentence_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                                     value: str) -> None:
    monkeypatch.setenv("PM_GATE_RMSE_TOL", value)
    with pytest.raises(UserError, match=r"PM_GATE_RMSE_TOL is '.*', which is not accepted: set it to a number .*0\.05"):
        gate.GateRules.from_env()
    monkeypatch.setenv("PM_GATE_RMSE_TOL", "0.05")
    monkeypatch.setenv("PM_GATE_F2_TOL", "")
    assert gate.GateRules.from_env() == gate.GateRules(rmse_tolerance=0.05, f2_tolerance=0.0)


class _LockedRegistry:
    """Makes the next `times` reads of a registered model or its aliases fail as a locked SQLite database does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, times: int) -> None:
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE

        self.failures = 0
        client = mlflow.MlflowClient

        def failing(method: str) -> object:
            real = getattr(client, method)

            def read(inner: object, *args: object, **kwargs: object) -> object:
                if self.failures < times:
                    self.failures += 1
                    raise MlflowException("(sqlite3.OperationalError) database is locked",
                                          error_code=TEMPORARILY_UNAVAILABLE)
                return real(inner, *args, **kwargs)

            return read

        for method in ("get_registered_model", "get_model_version_by_alias"):
            monkeypatch.setattr(client, method, failing(method))
        monkeypatch.setattr(registry, "READ_BACKOFF_S", 0.01)


def test_a_failed_read_of_the_champion_never_promotes(home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = _log(tmp_path, "a", {"val_rmse": 10.0, "val_f2": 0.8})
    assert promotion.register_outcome(v1, {"val_rmse": 10.0, "val_f2": 0.8})[0]
    worse = _log(tmp_path, "b", {"val_rmse": 50.0, "val_f2": 0.1})
    with monkeypatch.context() as patch:
        _LockedRegistry(patch, times=registry.READ_ATTEMPTS)
        promoted, reason = promotion.register_outcome(worse, {"val_rmse": 50.0, "val_f2": 0.1})
    assert not promoted, "a champion that could not be read is not 'no champion'"
    assert reason.startswith("Not decided: the model registry could not be read") and "database is locked" in reason
    assert f"The champion stays as it was and v{worse} is kept as the challenger" in reason
    assert registry.champion_version() == v1
    assert registry.alias_version(registry.CHALLENGER) == worse
    assert registry.client().get_model_version(registry.model_name(), str(worse)).tags["gate"] == reason


def test_a_read_that_fails_once_is_retried_and_the_gate_decides(home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    v1 = _log(tmp_path, "a", {"val_rmse": 10.0, "val_f2": 0.8})
    assert promotion.register_outcome(v1, {"val_rmse": 10.0, "val_f2": 0.8})[0]
    worse = _log(tmp_path, "b", {"val_rmse": 50.0, "val_f2": 0.1})
    with monkeypatch.context() as patch:
        _LockedRegistry(patch, times=1)
        promoted, reason = promotion.register_outcome(worse, {"val_rmse": 50.0, "val_f2": 0.1})
    assert not promoted and reason.startswith("Kept out: validation RMSE 50.00 is worse than the champion's 10.00")
    assert registry.champion_version() == v1


def test_first_version_is_champion_and_worse_one_stays_challenger(home: Path, tmp_path: Path) -> None:
    assert registry.champion_version() is None
    with pytest.raises(UserError, match="No model is trained yet"):
        registry.resolve("champion")
    v1 = _log(tmp_path, "a", {"val_rmse": 14.0, "val_f2": 0.8})
    assert promotion.register_outcome(v1, {"val_rmse": 14.0, "val_f2": 0.8})[0]
    assert registry.champion_version() == v1

    v2 = _log(tmp_path, "b", {"val_rmse": 16.0, "val_f2": 0.8})
    promoted, reason = promotion.register_outcome(v2, {"val_rmse": 16.0, "val_f2": 0.8})
    assert not promoted and "RMSE" in reason
    assert registry.champion_version() == v1
    assert registry.alias_version(registry.CHALLENGER) == v2

    v3 = _log(tmp_path, "c", {"val_rmse": 13.0, "val_f2": 0.85})
    assert promotion.register_outcome(v3, {"val_rmse": 13.0, "val_f2": 0.85})[0]
    assert registry.champion_version() == v3


def test_rollback_and_bundle_download(home: Path, tmp_path: Path) -> None:
    v1 = _log(tmp_path, "a", {"val_rmse": 14.0, "val_f2": 0.8})
    promotion.register_outcome(v1, {"val_rmse": 14.0, "val_f2": 0.8})
    v2 = _log(tmp_path, "b", {"val_rmse": 12.0, "val_f2": 0.9})
    promotion.register_outcome(v2, {"val_rmse": 12.0, "val_f2": 0.9})
    promotion.set_alias(registry.CHAMPION, v1)
    assert registry.resolve("champion") == v1
    folder = registry.bundle_dir(v1)
    assert json.loads((folder / "config.json").read_text()) == {"tag": "a"}
    versions = registry.list_versions()
    assert list(versions["version"]) == [v2, v1]
    assert versions.loc[versions["version"] == v1, "aliases"].item() == "champion"
    assert versions.loc[versions["version"] == v2, "val_rmse"].item() == pytest.approx(12.0)
    with pytest.raises(UserError, match="does not exist"):
        promotion.set_alias(registry.CHAMPION, 99)
    with pytest.raises(UserError, match="not a model version"):
        registry.resolve("latest")


def test_sandbox_keeps_its_versions_and_aliases_apart_from_the_served_model(home: Path, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.CREATED_BY_ENV, "dashboard")
    v1 = _log(tmp_path, "a", {"val_rmse": 14.0, "val_f2": 0.8})
    promotion.register_outcome(v1, {"val_rmse": 14.0, "val_f2": 0.8})
    with registry.sandbox():
        assert registry.model_name() == registry.SIM_MODEL_NAME and registry.champion_version() is None
        copy = run_logging.copy_version(registry.MODEL_NAME, v1)
        promotion.set_alias(registry.CHAMPION, copy)
        worse = _log(tmp_path, "b", {"val_rmse": 20.0, "val_f2": 0.5})
        assert not promotion.register_outcome(worse, {"val_rmse": 20.0, "val_f2": 0.5})[0]
        assert json.loads((registry.bundle_dir(worse) / "config.json").read_text()) == {"tag": "b"}
    assert registry.model_name() == registry.MODEL_NAME
    assert registry.champion_version() == v1 and registry.alias_version(registry.CHALLENGER) is None
    assert json.loads((registry.bundle_dir(v1) / "config.json").read_text()) == {"tag": "a"}
    served = registry.list_versions()
    assert list(served["version"]) == [v1] and served["created_by"].tolist() == ["dashboard"]
    sandbox = registry.list_versions(registry.SIM_MODEL_NAME).set_index("version")
    assert sandbox.loc[copy, "copied_from"] == f"{registry.MODEL_NAME} v{v1}"
    assert sandbox["created_by"].tolist() == ["simulation", "simulation"]
    assert sandbox.loc[worse, "aliases"] == "challenger" and sandbox.loc[copy, "aliases"] == "champion"


def test_creator_comes_from_the_job_record_of_a_training_job(home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from core.operations import job_records

    record = tmp_path / "job.json"
    job_records.write_record(record, job_records.JobRecord(id="20261122-120000-abcdef", kind="train",
                                                           module="core.operations.train_job", created_by="setup"))
    monkeypatch.delenv(registry.CREATED_BY_ENV, raising=False)
    monkeypatch.setenv(job_records.RECORD_ENV, str(record))
    assert registry.current_creator() == "setup"
    job_records.write_record(record, job_records.JobRecord(id="20261122-120000-abcdef", kind="train",
                                                           module="core.operations.train_job", created_by="api"))
    assert registry.current_creator() == "api"
    monkeypatch.delenv(job_records.RECORD_ENV)
    assert registry.current_creator() == "cli"
    assert registry.creator_kind("cli simulate") == "simulation" and registry.creator_kind("someone") == ""


def test_two_gates_deciding_at_once_leave_the_better_model_champion(home: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The better candidate's gate holds its decision open until the worse one has read the champion (or 2 s
    pass): without the registry lock the worse one reads the old champion meanwhile, is promoted over it and
    writes last; with the lock it cannot read until the better one is champion."""
    first = _log(tmp_path, "first", {"val_rmse": 14.0, "val_f2": 0.8})
    promotion.register_outcome(first, {"val_rmse": 14.0, "val_f2": 0.8})
    better = _log(tmp_path, "better", {"val_rmse": 10.0, "val_f2": 0.8})
    worse = _log(tmp_path, "worse", {"val_rmse": 12.0, "val_f2": 0.8})
    better_deciding, worse_read = threading.Event(), threading.Event()
    seen: dict[str, object] = {}
    mine = threading.local()
    decide, read_metrics = gate.gate, registry.version_metrics

    def version_metrics(version: int) -> dict[str, float]:
        if getattr(mine, "name", "") == "worse":
            worse_read.set()
        return read_metrics(version)

    def watched_gate(candidate: dict, champion: dict, rules: gate.GateRules) -> tuple[bool, str]:
        if mine.name == "better":
            better_deciding.set()
            seen["worse read while the better decided"] = worse_read.wait(timeout=2.0)
        else:
            seen["champion the worse one saw"] = champion["val_rmse"]
        return decide(candidate, champion, rules)

    monkeypatch.setattr(registry, "version_metrics", version_metrics)
    monkeypatch.setattr(promotion, "gate", watched_gate)
    errors: list[BaseException] = []

    def run(name: str, version: int, metrics: dict[str, float]) -> None:
        mine.name = name
        try:
            promotion.register_outcome(version, metrics)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=run, args=("better", better, {"val_rmse": 10.0, "val_f2": 0.8})),
               threading.Thread(target=run, args=("worse", worse, {"val_rmse": 12.0, "val_f2": 0.8}))]
    threads[0].start()
    assert better_deciding.wait(timeout=60), "the better candidate's gate never ran"
    threads[1].start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert seen == {"worse read while the better decided": False, "champion the worse one saw": 10.0}
    assert registry.champion_version() == better
    assert registry.alias_version(registry.CHALLENGER) == worse


KILLED_WHILE_REGISTERING = """
import os, signal, sys
from pathlib import Path
from core.operations import run_logging
register = run_logging.new_version
def register_then_die(*args, **kwargs):
    register(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
run_logging.new_version = register_then_die
run_logging.log_training(bundle_dir=Path(sys.argv[1]), params={}, metrics={"val_rmse": 9.0, "val_f2": 0.9},
                         history=[], lineage={}, tags={})
"""


def test_a_kill_during_registration_is_cleaned_up_at_the_next_start(home: Path, tmp_path: Path) -> None:
    first = _log(tmp_path, "first", {"val_rmse": 14.0, "val_f2": 0.8})
    promotion.register_outcome(first, {"val_rmse": 14.0, "val_f2": 0.8})
    bundle = tmp_path / "killed"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_REGISTERING, str(bundle)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    registry.init()
    c = registry.client()
    orphan = c.get_model_version(registry.model_name(), "2")
    assert orphan.tags["gate"].startswith("Kept out") and "stopped" in orphan.tags["gate"]
    run = c.get_run(orphan.run_id)
    assert run.info.status == "KILLED" and "stopped" in run.data.tags[run_recovery.END_REASON_TAG]
    experiment = c.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    assert not c.search_runs([experiment], filter_string="attributes.status = 'RUNNING'")
    assert registry.champion_version() == first and registry.alias_version(registry.CHALLENGER) is None
    assert c.get_model_version(registry.model_name(), str(first)).tags["gate"].startswith("No champion yet")


def test_recovery_leaves_the_runs_of_live_processes_alone(home: Path) -> None:
    registry.init()
    c = registry.client()
    experiment = c.get_experiment_by_name(registry.EXPERIMENT).experiment_id
    live = c.create_run(experiment, tags=run_recovery.process_tags()).info.run_id
    assert run_recovery.recover() == []
    assert c.get_run(live).info.status == "RUNNING"
    c.set_terminated(live)
