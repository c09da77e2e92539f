"""The production simulation: a stream of quarters T0..T3 = FD001..FD004 that drifts, and retraining.

Engines of the four training sets (run to failure, so the true RUL is known at every cycle) are
streamed in order into a ``stream`` dataset, a batch of whole engines per step; the last step of
each quarter mixes in a few engines of the next quarter. Each quarter contributes
``steps/4 x engines_per_step`` engines, drawn with a fixed seed.

The simulation is a sandbox. Its versions and aliases live in their own registered model
``rul-ensemble-sim`` (:func:`core.operations.registry.sandbox`), its stream and predictions in its own
DuckDB file (:func:`scratch_store`), and its trainings are jobs of kind ``sim-train``; the served
``rul-ensemble`` (its champion and challenger), the fleet store and the Models page's latest training
are never touched. A model trained on T0 (``train_FD001``) serves first: a sandbox copy of the
champion if that was trained on exactly T0, else the sandbox's own T0 model, else a copy of the newest
served-model version trained on T0, else one trained in the sandbox with the simulation's small config.

At each step, on the window (the engines just streamed) it measures, against the serving model's
training data: the drift share (:func:`core.monitoring.verdicts.assess`), the prediction PSI (predicted RUL of the
window vs of the training data) and the live RMSE and F2 (truth from run-to-failure). A metric
*crosses* when it goes above its threshold (drift share > 0.3, prediction PSI > 0.25 by default).
With auto-retrain on, a step whose verdict recommends retraining starts a training job on the
stream rows seen so far (a snapshot of the stream dataset, :mod:`core.operations.retrain`), at most once every
``retrain_gap`` steps and ``max_retrains`` times per run; the job's promotion gate decides whether
the new version serves. The gate compares validation metrics measured on different engines (the
champion's on T0, the candidate's on the stream), so a candidate it keeps out runs in *shadow* at the
next step: both models score that step's engines, which neither has seen, and the candidate is
promoted (the sandbox's alias ``champion``) if its live RMSE is lower and its F2 not lower. The timeline (one record per step, with the model version in service) is
written atomically to a JSON file after every step, so a page can draw it while the run goes on.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import config
from core.data import queries, snapshot, store, writes
from core.errors import UserError
from core.monitoring import drift, prediction_drift, statistics, verdicts
from core.operations import job_records, job_runtime, jobs, promotion, registry, run_logging

if TYPE_CHECKING:  # torch-backed modules are imported where used, so `python -m core --help` stays fast
    import duckdb

    from models.ensemble import Ensemble
    from models.training import TrainConfig
from core.monitoring.stream_plan import QUARTERS, T0_DATASET, Settings, batch_frame, plan_stream, true_rul
from core.monitoring.timelines import new_timeline_path, write_timeline

STREAM_SUBSET = "SIM"
SCRATCH_DB = "simulation.duckdb"
JOB_KIND = "simulate"
POLL_S = 1.0

Progress = Callable[[int, int, str], None]
"""``progress(steps_done, steps_total, message)``."""


@dataclass
class Serving:
    """The model in service, the rows it was trained on (the drift reference) and its predicted RUL there."""

    version: int
    ensemble: Ensemble
    reference: pd.DataFrame
    reference_label: str
    reference_rul: np.ndarray

    @classmethod
    def load(cls, version: int, reference: pd.DataFrame, label: str) -> Serving:
        """Load ``version`` from the registry and score its reference once."""
        from models.bundle import load_bundle

        ensemble = load_bundle(registry.bundle_dir(version))
        sample = prediction_drift.sample_engines(reference)
        return cls(version, ensemble, reference, label, prediction_drift.predicted_rul(ensemble, sample, label))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def live(model: Serving, window: pd.DataFrame) -> tuple[drift.LiveError, pd.DataFrame]:
    """Live RMSE and F2 of ``model`` on the window (truth from run-to-failure), and its predictions."""
    predictions = model.ensemble.predict_cycles(window)
    truth = window[["dataset", "unit", "cycle"]].assign(true_rul=true_rul(window))
    scored = predictions.merge(truth, on=["dataset", "unit", "cycle"], how="left")
    error = drift.live_error(scored["true_rul"], scored["rul"], scored["p_fail_30"],
                             p_threshold=float(model.ensemble.thresholds.get("high", 0.5)))
    return error, predictions


def beats(candidate: drift.LiveError, champion: drift.LiveError) -> bool:
    """True when ``candidate`` has a lower RMSE and an F2 not lower (F2 ignored where undefined)."""
    if candidate.rmse >= champion.rmse:
        return False
    return candidate.f2 is None or champion.f2 is None or candidate.f2 >= champion.f2


def measure(serving: Serving, window: pd.DataFrame, thresholds: statistics.Thresholds,
            normalise: bool) -> tuple[dict[str, Any], pd.DataFrame]:
    """Drift share, prediction PSI, live RMSE/F2 and verdict of one window; also its predictions."""
    error, predictions = live(serving, window)
    prediction = statistics.prediction_drift(serving.reference_rul, predictions["rul"], thresholds.prediction_psi)
    report = verdicts.assess(serving.reference, window, normalise=normalise, thresholds=thresholds,
                          prediction_psi=prediction.score)
    table = report.features
    drifted = table[table["informative"] & table["drifted"]].sort_values("psi", ascending=False)
    values = {
        "drift_share": report.drift_share,
        "prediction_psi": _finite(prediction.score),
        "rmse": error.rmse,
        "f2": error.f2,
        "verdict": report.verdict.level,
        "retrain_recommended": report.verdict.retrain_recommended,
        "drifted_features": drifted["feature"].head(5).tolist(),
    }
    return values, predictions


def scratch_path() -> Path:
    """The simulation's own DuckDB file, beside the fleet store: ``$PM_HOME/simulation/simulation.duckdb``."""
    return config.paths().home / "simulation" / SCRATCH_DB


@contextmanager
def scratch_store(read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to :func:`scratch_path` (the stream and its predictions), never to the fleet store."""
    saved = os.environ.get("PM_DUCKDB")
    os.environ["PM_DUCKDB"] = str(scratch_path())
    try:
        with store.connect(read_only) as con:
            yield con
    finally:
        if saved is None:
            os.environ.pop("PM_DUCKDB", None)
        else:
            os.environ["PM_DUCKDB"] = saved


def _train(names: list[str], train_config: TrainConfig, timeout_s: float, notify: Callable[[str], None],
           created_by: str, scratch: bool = False) -> job_records.JobRecord:
    """Export the snapshot of ``names`` (from the scratch store with ``scratch``), run the training job in
    the sandbox, relay its progress and wait for it.

    If this process stops (cancelled, Ctrl-C) or the timeout passes, the training job is cancelled.
    """
    from core.operations import retrain

    if scratch:
        with scratch_store(read_only=True) as con:
            snap = snapshot.export(con, names)
    else:
        snap = retrain.export_snapshot(names)
    record = retrain.start_job(snap, train_config, created_by, kind=retrain.SIM_TRAIN_KIND)
    notify(f"training job {record.id} started on {snap.engines} engines ({snap.rows:,} rows)")
    deadline = time.monotonic() + timeout_s
    last = ""
    try:
        while not record.finished and time.monotonic() < deadline:
            time.sleep(POLL_S)
            record = jobs.get(record.id)
            line = f"training job {record.id}: {record.phase or record.state} {record.progress:.0%}"
            if line != last:
                notify(line)
                last = line
    finally:
        if not record.finished:
            record = jobs.cancel(record.id)
    return record


def _trained_on_t0(versions: pd.DataFrame) -> list[int]:
    if versions.empty or "data" not in versions.columns:
        return []
    return sorted(int(v) for v in versions.loc[versions["data"] == T0_DATASET, "version"])


def _sandbox_copy(version: int, own: pd.DataFrame) -> tuple[int, bool]:
    """The sandbox version copying ``rul-ensemble`` v``version`` (made now if there is none); (version, new)."""
    origin = f"{registry.MODEL_NAME} v{version}"
    if not own.empty and "copied_from" in own.columns:
        found = own.loc[own["copied_from"] == origin, "version"]
        if not found.empty:
            return int(found.max()), False
    return run_logging.copy_version(registry.MODEL_NAME, version), True


def _t0_model(settings: Settings, notify: Callable[[str], None], created_by: str) -> tuple[int, str]:
    """The sandbox version trained on T0 that serves first (made the sandbox's champion), and how it was found.

    Call inside :func:`core.operations.registry.sandbox`. Preference: a copy of the served champion if it
    was trained on T0 alone; else a sandbox version trained on T0; else a copy of the newest served-model
    version trained on T0; else one trained in the sandbox with the simulation's small config.
    """
    served = registry.champion_version(registry.MODEL_NAME)
    main_t0 = _trained_on_t0(registry.list_versions(registry.MODEL_NAME))
    own = registry.list_versions()
    own_t0 = [v for v in _trained_on_t0(own) if not _is_copy(own, v)]
    if served is not None and served in main_t0:
        version, new = _sandbox_copy(served, own)
        note = f"a {'new ' if new else ''}copy of the champion v{served} (trained on {T0_DATASET})"
    elif own_t0:
        version = own_t0[-1]
        note = f"the sandbox's own model trained on {T0_DATASET}"
    elif main_t0:
        version, new = _sandbox_copy(main_t0[-1], own)
        note = f"a {'new ' if new else ''}copy of v{main_t0[-1]} of {registry.MODEL_NAME} (trained on {T0_DATASET})"
    else:
        notify(f"no model trained on {T0_DATASET} yet: training one in the sandbox")
        record = _train([T0_DATASET], settings.train_config(), settings.train_timeout_s, notify, created_by)
        if record.state != "succeeded":
            raise UserError(f"Training the T0 model on {T0_DATASET} {record.state}: {record.error or 'no reason given'}")
        version = int(record.result["version"])
        note = f"a model trained on {T0_DATASET} for the simulation"
    promotion.set_alias(registry.CHAMPION, version)
    promotion.clear_alias(registry.CHALLENGER)
    return version, (f"Sandbox {registry.model_name()} v{version}, {note}, serves from the start; "
                     f"the served {registry.MODEL_NAME} is not touched.")


def _is_copy(versions: pd.DataFrame, version: int) -> bool:
    if "copied_from" not in versions.columns:
        return False
    return bool(versions.loc[versions["version"] == version, "copied_from"].astype(bool).any())


def _retrain(settings: Settings, notify: Callable[[str], None], created_by: str) -> dict[str, Any]:
    """Retrain on the stream so far; return what happened (job, version, promoted, reason or error)."""
    started = time.monotonic()
    try:
        record = _train([settings.stream], settings.train_config(), settings.train_timeout_s, notify, created_by,
                        scratch=True)
    except UserError as err:
        return {"job": None, "state": "not started", "error": str(err), "promoted": False, "version": None,
                "seconds": round(time.monotonic() - started, 1)}
    outcome = {"job": record.id, "state": record.state, "seconds": round(time.monotonic() - started, 1),
               "version": None, "promoted": False}
    if record.state == "succeeded":
        outcome.update(version=int(record.result["version"]), promoted=bool(record.result["promoted"]),
                       reason=str(record.result["reason"]),
                       val_rmse=_finite(record.result.get("metrics", {}).get("val_rmse")))
    else:
        outcome["error"] = record.error or f"the training job {record.state}"
    return outcome


# The run -------------------------------------------------------------------------------------


def _load_sources() -> dict[str, pd.DataFrame]:
    with store.connect(read_only=True) as con:
        loaded = set(queries.dataset_names(con))
        missing = [name for name in QUARTERS if name not in loaded]
        if missing:
            raise UserError(
                f"The simulation streams {', '.join(QUARTERS)}; load {', '.join(missing)} first "
                "(Data page or `python -m core ingest`)."
            )
        return {name: queries.readings(con, name) for name in QUARTERS}


def _reset_stream(name: str) -> None:
    with scratch_store() as con:
        found = queries.find_dataset(con, name)
        if found is None:
            return
        if found["role"] != "sandbox":
            raise UserError(f"The dataset '{name}' is a {found['role']} dataset, not the simulation sandbox; choose another name.")
        writes.delete_dataset(con, name)


def _crossed(values: dict[str, Any], previous: dict[str, Any] | None, thresholds: statistics.Thresholds) -> list[str]:
    """The metrics that went above their threshold at this step (were not above at the previous one)."""
    limits = {"drift_share": thresholds.share, "prediction_psi": thresholds.prediction_psi}
    crossed = []
    for metric, limit in limits.items():
        now = values.get(metric)
        before = previous.get(metric) if previous else None
        if now is not None and now > limit and (before is None or before <= limit):
            crossed.append(metric)
    return crossed


def ensure_idle(own_job: str | None = None) -> None:
    """UserError if a training job or a simulation other than ``own_job`` is running."""
    busy = jobs.running()
    if busy is not None:
        raise UserError(f"A training job is running (job {busy.id}); wait for it or cancel it before simulating.")
    for record in jobs.list_jobs(limit=50):
        if record.kind == JOB_KIND and not record.finished and record.id != own_job:
            raise UserError(f"A simulation is already running (job {record.id}); wait for it or cancel it.")


def run(settings: Settings, timeline_path: Path, progress: Progress | None = None,
        created_by: str = "simulation", job_id: str | None = None) -> dict[str, Any]:
    """Run the whole simulation in its sandbox, writing the timeline to ``timeline_path`` after every step."""
    settings.validate()
    ensure_idle(job_id)
    with _one_run(), registry.sandbox():
        return _run(settings, timeline_path, progress, created_by, job_id)


@contextmanager
def _one_run() -> Iterator[None]:
    """Hold the sandbox's run lock (a foreground CLI run has no job record to check); UserError if it is held."""
    lock = scratch_path().with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise UserError("A simulation is already running on this store (from the CLI or the dashboard); "
                            "wait for it or stop it.") from err
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(settings: Settings, timeline_path: Path, progress: Progress | None, created_by: str,
         job_id: str | None) -> dict[str, Any]:
    started = time.monotonic()
    thresholds = statistics.Thresholds()
    total = settings.steps
    timeline: dict[str, Any] = {
        "status": "running", "job_id": job_id, "settings": settings.to_dict(), "thresholds": thresholds.to_dict(),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"), "steps_total": total,
        "quarters": list(QUARTERS), "stream": settings.stream, "steps": [], "events": [], "message": "starting",
        "elapsed_s": 0.0, "registered_model": registry.model_name(), "scratch_store": str(scratch_path()),
    }

    def notify(message: str) -> None:
        timeline["message"] = message
        timeline["elapsed_s"] = round(time.monotonic() - started, 1)
        write_timeline(timeline_path, timeline)
        if progress:
            progress(len(timeline["steps"]), total, message)

    def event(step: int, text: str) -> None:
        timeline["events"].append({"step": step, "text": text})
        notify(text)

    try:
        notify("reading the four training sets")
        sources = _load_sources()
        plan = plan_stream([sorted(sources[q]["unit"].unique().tolist()) for q in QUARTERS],
                           settings.steps, settings.engines_per_step, settings.mix, settings.seed)
        version, note = _t0_model(settings, notify, created_by)
        _reset_stream(settings.stream)
        event(0, note)
        serving = Serving.load(version, sources[T0_DATASET].assign(dataset=T0_DATASET), T0_DATASET)
        seen: list[pd.DataFrame] = []
        last_attempt: int | None = None
        previous: dict[str, Any] | None = None
        shadow: Serving | None = None
        for index, batch in enumerate(plan, start=1):
            window = batch_frame(batch, sources, settings.stream)
            with scratch_store() as con:
                writes.append_readings(con, settings.stream, STREAM_SUBSET, "sandbox", f"simulation of {', '.join(QUARTERS)}",
                                      window.drop(columns="dataset"))
            seen.append(window)
            values, predictions = measure(serving, window, thresholds, settings.normalise)
            with scratch_store() as con:
                writes.insert_predictions(con, settings.stream, predictions, str(serving.version))
            mixture = pd.Series([e.source for e in batch]).value_counts().to_dict()
            step: dict[str, Any] = {
                "step": index, "quarter": f"T{batch[0].quarter}", "sources": {k: int(v) for k, v in mixture.items()},
                "units": [batch[0].unit, batch[-1].unit], "rows": len(window),
                "stream_rows": int(sum(len(f) for f in seen)), "model_version": serving.version,
                "reference": serving.reference_label, **values,
                "crossed": _crossed(values, previous, thresholds), "retrain": None,
            }
            previous = values
            for metric in step["crossed"]:
                event(index, f"step {index}: {metric.replace('_', ' ')} crossed its threshold "
                             f"({values[metric]:.2f} with v{serving.version})")
            if shadow is not None:
                shadow_error, _ = live(shadow, window)
                promote = beats(shadow_error, drift.LiveError(0, values["rmse"], values["f2"], 0))
                step["shadow"] = {"version": shadow.version, "rmse": shadow_error.rmse, "f2": shadow_error.f2,
                                  "promoted": promote}
                comparison = (f"live RMSE {shadow_error.rmse:.1f} vs {values['rmse']:.1f} of v{serving.version} "
                              f"on step {index}'s engines")
                if promote:
                    promotion.set_alias(registry.CHAMPION, shadow.version)
                    if registry.alias_version(registry.CHALLENGER) == shadow.version:
                        promotion.clear_alias(registry.CHALLENGER)
                    serving = shadow
                    event(index, f"step {index}: challenger v{shadow.version} promoted in shadow ({comparison}); "
                                 f"it serves from step {index + 1}")
                else:
                    event(index, f"step {index}: challenger v{shadow.version} stays out ({comparison})")
                shadow = None
            attempts = sum(1 for s in timeline["steps"] if s.get("retrain"))
            due = last_attempt is None or index - last_attempt >= settings.retrain_gap
            if settings.auto_retrain and values["retrain_recommended"] and due and attempts < settings.max_retrains:
                last_attempt = index
                notify(f"step {index}: retraining on the {step['stream_rows']:,} stream rows seen so far")
                outcome = _retrain(settings, notify, created_by)
                step["retrain"] = outcome
                if outcome.get("promoted"):
                    stream_rows = pd.concat(seen, ignore_index=True)
                    serving = Serving.load(outcome["version"], stream_rows, f"{settings.stream} steps 1-{index}")
                    event(index, f"step {index}: retrained v{outcome['version']} promoted ({outcome['reason']}); "
                                 f"it serves from step {index + 1}")
                elif outcome.get("version") is not None:
                    stream_rows = pd.concat(seen, ignore_index=True)
                    shadow = Serving.load(outcome["version"], stream_rows, f"{settings.stream} steps 1-{index}")
                    event(index, f"step {index}: retrained v{outcome['version']} kept out by the gate "
                                 f"({outcome['reason']}); it runs in shadow at the next step")
                else:
                    event(index, f"step {index}: retraining failed: {outcome.get('error')}")
            step["elapsed_s"] = round(time.monotonic() - started, 1)
            timeline["steps"].append(step)
            notify(f"step {index}/{total} ({step['quarter']}): drift share {values['drift_share']:.2f}, "
                   f"prediction PSI {values['prediction_psi'] or 0:.2f}, live RMSE {values['rmse']:.1f} "
                   f"with v{step['model_version']}")
        timeline["status"] = "succeeded"
        timeline["final_version"] = serving.version
        notify("finished")
    except BaseException as err:
        cancelled = isinstance(err, (job_runtime.JobCancelled, KeyboardInterrupt))
        timeline["status"] = "cancelled" if cancelled else "failed"
        timeline["error"] = "The simulation was cancelled." if cancelled else str(err)
        timeline["elapsed_s"] = round(time.monotonic() - started, 1)
        write_timeline(timeline_path, timeline)
        raise
    return timeline


def start_job(settings: Settings, created_by: str = "") -> job_records.JobRecord:
    """Start the simulation as a background job (not exclusive: it starts training jobs itself)."""
    settings.validate()
    ensure_idle()
    path = new_timeline_path("job")
    return jobs.start(
        JOB_KIND, "core.monitoring.simulate_job", ["--settings", json.dumps(settings.to_dict()), "--timeline", str(path)],
        config=settings.to_dict(), data={"timeline": str(path), "stream": settings.stream},
        created_by=created_by, exclusive=False,
    )


def latest_job() -> job_records.JobRecord | None:
    """The newest simulation job, or None."""
    for record in jobs.list_jobs(limit=50):
        if record.kind == JOB_KIND:
            return record
    return None
