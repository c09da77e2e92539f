"""The right model is served (issue 13, finding 4): bundles are cached by run id and content hash, a corrupt
copy is fetched again, a corrupt artifact is a sentence, and a tracking database deleted or replaced under a
running process is reported instead of silently recreated."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import UserError
from core.operations import promotion, registry, run_logging, tracking_store

pytestmark = pytest.mark.slow  # every test trains a model end to end in a child process

REPO = Path(__file__).resolve().parent.parent
TINY = {"epochs": 1, "samples_per_epoch": 512, "hidden": 8, "layers": 1, "device": "cpu"}
TRAIN_THEN_SCORE = """
import json, sys
from core.cli import main
from core.operations import retrain
from core.operations.training_run import run_training
from models.training import TrainConfig
config = TrainConfig.from_dict({**TrainConfig().to_dict(), **json.loads(sys.argv[1])})
result = run_training(retrain.export_snapshot(["train_FD001"]).path, config)
print(json.dumps({"version": result["version"], "run_id": result["run_id"]}), flush=True)
if sys.argv[2:] == ["score"]:
    sys.exit(main(["score", "--dataset", "test_FD001", "--no-record", "--json"]))
"""


def _train(settings: dict, *then: str) -> list[dict]:
    """Train a tiny model in a new process (then score test_FD001 there, if asked); its JSON lines."""
    out = subprocess.run([sys.executable, "-c", TRAIN_THEN_SCORE, json.dumps({**TINY, **settings}), *then],
                         cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def _log_bundle(tmp_path: Path, tag: str) -> tuple[int, Path]:
    """Register a small bundle (three files) as a new version; return (version, the bundle folder logged)."""
    bundle = tmp_path / f"bundle-{tag}"
    bundle.mkdir()
    (bundle / "config.json").write_text(json.dumps({"tag": tag}))
    (bundle / "weights.bin").write_bytes(bytes(range(256)) * 8 + tag.encode())
    (bundle / "notes.txt").write_text(f"bundle {tag}\n")
    _, version = run_logging.log_training(bundle_dir=bundle, params={"epochs": 1}, metrics={"val_rmse": 14.0,
                                       "val_f2": 0.8}, history=[], lineage={"datasets": "train_FD001"}, tags={})
    promotion.register_outcome(version, {"val_rmse": 14.0, "val_f2": 0.8})
    return version, bundle


def _artifact_copy(version: int) -> Path:
    """The bundle folder of `version` inside the artifact store (the embedded store is a local folder)."""
    source = registry.client().get_model_version(registry.model_name(), str(version)).source
    return Path(source.removeprefix("file://"))


def test_a_new_registry_v1_is_served_not_the_old_cached_v1(small_fd001: Path) -> None:
    first, old = _train({"n_trees": 10, "seed": 3}, "score")
    assert first["version"] == 1 and old["model_version"] == 1
    (small_fd001 / "mlflow.db").unlink()
    (second,) = _train({"n_trees": 4, "seed": 11})
    assert second["version"] == 1 and second["run_id"] != first["run_id"]

    from core.server.model_cache import ModelCache
    from core.serving import scoring

    version, ensemble = scoring.load_model("champion")
    rows, truth = scoring.fleet_frame(["test_FD001"])
    served = scoring.score(ensemble, rows, truth)["rul"].round(4).tolist()
    assert version == 1 and registry.bundle_dir(1).name.startswith(second["run_id"])
    assert served != [round(e["rul"], 4) for e in old["engines"]], "the old cached v1 bundle was served"
    assert ModelCache().get(None).key == registry.bundle_key(1) and second["run_id"] in registry.bundle_key(1)


def test_a_corrupt_cached_copy_is_fetched_again(pm_home: Path, tmp_path: Path) -> None:
    version, original = _log_bundle(tmp_path, "a")
    cached = registry.bundle_dir(version)
    (cached / "weights.bin").write_bytes(b"flipped")
    (cached / "notes.txt").unlink()
    again = registry.bundle_dir(version)
    for name in ("config.json", "weights.bin", "notes.txt"):
        assert (again / name).read_bytes() == (original / name).read_bytes(), name


def test_a_corrupt_or_missing_artifact_is_one_sentence(pm_home: Path, tmp_path: Path) -> None:
    version, _ = _log_bundle(tmp_path, "a")
    stored = _artifact_copy(version)
    (stored / "weights.bin").write_bytes(b"rotten")
    with pytest.raises(UserError, match=r"artifacts of model version 1 .* are corrupt") as corrupt:
        registry.bundle_dir(version)
    assert "\n" not in str(corrupt.value)
    (stored / "weights.bin").unlink()
    (stored / "config.json").unlink()
    (stored / "notes.txt").unlink()
    stored.rmdir()
    with pytest.raises(UserError, match="artifacts of model version 1 .* missing or unreadable") as missing:
        registry.bundle_dir(version)
    assert "\n" not in str(missing.value)


def test_a_deleted_tracking_database_is_reported_not_recreated(pm_home: Path, tmp_path: Path) -> None:
    registry.init()
    _log_bundle(tmp_path, "a")
    assert registry.champion_version() == 1
    (pm_home / "mlflow.db").unlink()
    with pytest.raises(UserError, match="tracking database .* is gone"):
        registry.champion_version()
    with pytest.raises(UserError, match="is gone"):
        registry.resolve("champion")
    job = subprocess.run([sys.executable, "-m", "core", "models"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, check=False)  # a process this one starts (a training job) inherits the check
    assert job.returncode == 1 and "is gone since the process that started this one opened it" in job.stderr
    assert not (pm_home / "mlflow.db").exists()


@pytest.mark.parametrize("how", ["restored as a new file", "written over in place"])
def test_a_replaced_tracking_database_is_reported(pm_home: Path, tmp_path: Path, how: str) -> None:
    from core.server.model_cache import ModelCache

    registry.init()
    _log_bundle(tmp_path, "a")
    database, other = pm_home / "mlflow.db", tmp_path / "other.db"
    shutil.copyfile(database, other)
    with sqlite3.connect(other) as con:  # another registry: same content, its own identity
        con.execute(f"UPDATE {tracking_store.TABLE} SET id = 'another registry'")
    if how == "restored as a new file":
        database.unlink()
        shutil.copyfile(other, database)
    else:
        database.write_bytes(other.read_bytes())
    with pytest.raises(UserError, match="was replaced while this process ran"):
        registry.champion_version()
    with pytest.raises(UserError, match="was replaced"):
        ModelCache().get("1")


def test_a_version_registered_before_content_hashes_is_checked_against_its_manifest(pm_home: Path,
                                                                                     tmp_path: Path) -> None:
    from core.operations.bundle_cache import CONTENT_TAG, file_sha256

    bundle = tmp_path / "legacy"
    bundle.mkdir()
    (bundle / "lstm.pt").write_bytes(b"weights" * 100)
    (bundle / "manifest.json").write_text(json.dumps({"files": {"lstm.pt": file_sha256(bundle / "lstm.pt")}}))
    _, version = run_logging.log_training(bundle_dir=bundle, params={}, metrics={}, history=[], lineage={}, tags={})
    registry.client().delete_model_version_tag(registry.model_name(), str(version), CONTENT_TAG)
    cached = registry.bundle_dir(version)
    assert cached.name == registry.bundle_key(version) == registry.client().get_model_version(
        registry.model_name(), str(version)).run_id
    (cached / "lstm.pt").write_bytes(b"garbage")
    assert (registry.bundle_dir(version) / "lstm.pt").read_bytes() == b"weights" * 100
