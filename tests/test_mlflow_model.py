"""MLflow the way its users expect: a registered version is an MLflow pyfunc model that predicts what
`core score` does, loads and serves outside this checkout, and its run lists its dataset inputs and lasts as
long as the training did; no experiment points into the working directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_support import build_trained_home

pytestmark = pytest.mark.slow  # trains a model end to end; two tests start MLflow's own servers

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, cmapss_dir: Path) -> tuple[Path, float]:
    """(a home with FD001 loaded and a tiny champion, when its training began in seconds since the epoch)."""
    began = time.time()
    return build_trained_home(tmp_path_factory.mktemp("mlflow") / "home", cmapss_dir), began


@pytest.fixture()
def home(built: tuple[Path, float], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PM_HOME", str(built[0]))
    for var in ("PM_DUCKDB", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(var, raising=False)
    return built[0]


def _champion_run(home: Path) -> Any:
    from core.operations import registry

    mv = registry.client().get_model_version(registry.MODEL_NAME, str(registry.champion_version()))
    return registry.client().get_run(mv.run_id)


def _scored_engine_1(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Engine 1 of test_FD001 as `python -m core score --json` gives it."""
    from core.cli import main

    assert main(["score", "--dataset", "test_FD001", "--no-record", "--json"]) == 0
    engines = json.loads(capsys.readouterr().out)["engines"]
    return next(e for e in engines if str(e["engine"]) == "1")


def _engine_1_readings() -> Any:
    from core.data import queries, store

    with store.connect(read_only=True) as con:
        rows = queries.readings(con, "test_FD001")
    return rows[rows["unit"] == 1].drop(columns=[c for c in ("dataset",) if c in rows.columns])


def _assert_same(predicted: dict[str, Any], scored: dict[str, Any]) -> None:
    for column in ("rul", "rul_low", "rul_high"):
        assert abs(float(predicted[column]) - scored[column]) < 0.01, column
    assert abs(float(predicted["p_fail_30"]) - scored["p_fail_30"]) < 1e-6
    assert predicted["risk"] == scored["risk"] and int(predicted["cycle"]) == scored["cycle"]


def test_the_champion_loads_as_a_pyfunc_and_predicts_what_core_score_gives(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import mlflow

    from core.operations import registry

    registry.init()  # points mlflow at the home's registry
    model = mlflow.pyfunc.load_model("models:/rul-ensemble@champion")
    assert model.metadata.get_input_schema() is not None and model.metadata.get_output_schema() is not None
    predicted = model.predict(_engine_1_readings())
    assert len(predicted) == 1
    _assert_same(predicted.iloc[0].to_dict(), _scored_engine_1(capsys))


def test_the_run_holds_the_snapshot_as_dataset_inputs_and_the_trainings_times(
        home: Path, built: tuple[Path, float]) -> None:
    run = _champion_run(home)
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "evaluation"}
    snapshot = run.data.params["data_path"]
    assert inputs["training"].digest == run.data.params["data_sha256"][:32]
    assert f"{snapshot}/train.parquet" in inputs["training"].source
    assert run.info.start_time >= built[1] * 1000
    assert (run.info.end_time - run.info.start_time) / 1000 >= run.data.metrics["train_seconds"]


def test_no_experiment_points_into_the_working_directory(home: Path) -> None:
    from core.operations import registry

    experiments = registry.client().search_experiments()
    assert {e.name for e in experiments} >= {"Default", registry.EXPERIMENT}
    for experiment in experiments:
        assert experiment.artifact_location.startswith((home / "mlartifacts").as_uri()), experiment.name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def outside_env(home: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a process run outside the checkout (no PYTHONPATH to it), on the home's registry, with
    the environment's scripts (uvicorn) on PATH as in an activated virtual environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PM_HOME")}
    return {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}", "HOME": str(tmp_path),
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}


@pytest.fixture()
def started(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Server processes a test starts (each in a session of its own); their process groups are stopped after."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    pytest.fail(f"{url} never answered: {log.read_text()[-3000:]}")


def test_mlflow_models_serve_serves_the_champion_outside_the_checkout(
        home: Path, tmp_path: Path, outside_env: dict[str, str], started: list[subprocess.Popen[bytes]],
        capsys: pytest.CaptureFixture[str]) -> None:
    port, log = _free_port(), tmp_path / "serve.log"
    with open(log, "wb") as out:
        started.append(subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m",
                                         "models:/rul-ensemble@champion", "--env-manager", "local", "-h",
                                         "127.0.0.1", "-p", str(port)], cwd=tmp_path, env=outside_env,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    _wait_for(f"http://127.0.0.1:{port}/ping", started[0], log)
    readings = _engine_1_readings()
    body = json.dumps({"dataframe_split": json.loads(readings.to_json(orient="split", index=False))}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        predictions = json.loads(response.read())["predictions"]
    assert len(predictions) == 1
    _assert_same(predictions[0], _scored_engine_1(capsys))


def test_mlflows_rest_api_lists_the_runs_dataset_inputs(home: Path, tmp_path: Path, outside_env: dict[str, str],
                                                       started: list[subprocess.Popen[bytes]]) -> None:
    run_id = _champion_run(home).info.run_id
    port, log = _free_port(), tmp_path / "server.log"
    with open(log, "wb") as out:
        started.append(subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                                         outside_env["MLFLOW_TRACKING_URI"], "--host", "127.0.0.1", "--port",
                                         str(port), "--workers", "1"], cwd=tmp_path, env=outside_env, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True))
    _wait_for(f"http://127.0.0.1:{port}/health", started[0], log)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/get?run_id={run_id}",
                                timeout=30) as response:
        run = json.loads(response.read())["run"]
    contexts = {tag["value"] for i in run["inputs"]["dataset_inputs"] for tag in i["tags"]}
    assert contexts == {"training", "evaluation"}
    assert all(i["dataset"]["source_type"] and i["dataset"]["digest"] for i in run["inputs"]["dataset_inputs"])
