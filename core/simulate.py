"""The production simulation: a stream of quarters T0..T3 = FD001..FD004 that drifts, and retraining.

Engines of the four training sets (run to failure, so the true RUL is known at every cycle) are
streamed in order into a ``stream`` dataset, a batch of whole engines per step; the last step of
each quarter mixes in a few engines of the next quarter. Each quarter contributes
``steps/4 x engines_per_step`` engines, drawn with a fixed seed.

The model trained on T0 (``train_FD001``) serves first: the champion if it was trained on exactly
that, else the newest version that was, else one is trained (through the job runner, with the
simulation's small config). The simulation takes over the ``champion`` alias for its run.

At each step, on the window (the engines just streamed) it measures, against the serving model's
training data: the drift share (:func:`core.drift.assess`), the prediction PSI (predicted RUL of the
window vs of the training data) and the live RMSE and F2 (truth from run-to-failure). A metric
*crosses* when it goes above its threshold (drift share > 0.3, prediction PSI > 0.25 by default).
With auto-retrain on, a step whose verdict recommends retraining starts a training job on the
stream rows seen so far (a snapshot of the stream dataset, :mod:`core.retrain`), at most once every
``retrain_gap`` steps and ``max_retrains`` times per run; the job's promotion gate decides whether
the new version serves. The gate compares validation metrics measured on different engines (the
champion's on T0, the candidate's on the stream), so a candidate it keeps out runs in *shadow* at the
next step: both models score that step's engines, which neither has seen, and the candidate is
promoted (alias ``champion``) if its live RMSE is lower and its F2 not lower. The timeline (one record per step, with the model version in service) is
written atomically to a JSON file after every step, so a page can draw it while the run goes on.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core import config, drift, jobs, prediction_drift, registry, store
from core.cmapss import COLUMNS
from core.errors import UserError

if TYPE_CHECKING:  # torch-backed modules are imported where used, so `python -m core --help` stays fast
    from models.ensemble import Ensemble
    from models.training import TrainConfig

QUARTERS: tuple[str, ...] = ("train_FD001", "train_FD002", "train_FD003", "train_FD004")
"""The source of each quarter T0..T3."""
T0_DATASET = QUARTERS[0]
STREAM_NAME = "stream_sim"
STREAM_SUBSET = "SIM"
JOB_KIND = "simulate"
POLL_S = 1.0

Progress = Callable[[int, int, str], None]
"""``progress(steps_done, steps_total, message)``."""


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one simulation run (the defaults finish in minutes on two cores)."""

    steps: int = 16
    engines_per_step: int = 10
    mix: int = 2
    auto_retrain: bool = True
    epochs: int = 1
    trees: int = 60
    normalise: bool = False
    retrain_gap: int = 3
    max_retrains: int = 3
    seed: int = 7
    stream: str = STREAM_NAME
    train_timeout_s: float = 1800.0

    def validate(self) -> None:
        """Raise UserError for a setting outside its range."""
        checks = [
            (self.steps >= 4, f"steps must be at least 4 (one per quarter); got {self.steps}"),
            (self.engines_per_step >= 1, f"engines per step must be at least 1; got {self.engines_per_step}"),
            (0 <= self.mix < self.engines_per_step,
             f"mixed-in engines must be at least 0 and fewer than the engines per step; got {self.mix}"),
            (self.epochs >= 1 and self.trees >= 1, "epochs and trees must be at least 1"),
            (self.retrain_gap >= 1 and self.max_retrains >= 0, "retrain gap must be >= 1 and max retrains >= 0"),
            (self.train_timeout_s > 0, "the training timeout must be positive"),
            (bool(self.stream.strip()), "the stream dataset needs a name"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"Invalid simulation setting: {message}.")

    def train_config(self) -> TrainConfig:
        """The small training config used for the T0 model (when needed) and for every retrain."""
        from models.training import TrainConfig

        small = {"epochs": self.epochs, "n_trees": self.trees, "samples_per_epoch": 4096, "hidden": 32,
                 "layers": 1, "seed": self.seed}
        return TrainConfig.from_dict({**TrainConfig().to_dict(), **small})

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Build from a dict; UserError on an unknown setting."""
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise UserError(f"Unknown simulation setting(s): {', '.join(unknown)}.")
        return cls(**data)


# Planning the stream -------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamEngine:
    """One engine of the stream: where it comes from and its unit number in the stream dataset."""

    quarter: int
    source: str
    source_unit: int
    unit: int


def quarter_steps(steps: int) -> list[int]:
    """The quarter (0..3) of each step: ``steps`` spread as evenly as possible, in order."""
    return [min(3, i * 4 // steps) for i in range(steps)]


def plan_stream(
    units: list[list[int]], steps: int, engines_per_step: int, mix: int, seed: int
) -> list[list[StreamEngine]]:
    """Which engines each step streams.

    ``units[q]`` are the engine numbers available in quarter ``q``. Each step takes
    ``engines_per_step`` engines of its quarter, drawn without replacement in a seeded order; the
    last step of quarters T0..T2 takes ``mix`` of them from the next quarter instead. Stream unit
    numbers run from 1 in stream order. UserError if a quarter has too few engines.
    """
    if len(units) != len(QUARTERS):
        raise UserError(f"The stream needs {len(QUARTERS)} quarters of engines; got {len(units)}.")
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.asarray(u, dtype=int))) for u in units]
    per_step = quarter_steps(steps)
    needed = [0, 0, 0, 0]
    for i, q in enumerate(per_step):
        last_of_quarter = q < 3 and (i + 1 == steps or per_step[i + 1] != q)
        needed[q] += engines_per_step - (mix if last_of_quarter else 0)
        if last_of_quarter:
            needed[q + 1] += mix
    for q, count in enumerate(needed):
        if count > len(queues[q]):
            raise UserError(
                f"Quarter T{q} ({QUARTERS[q]}) has {len(queues[q])} engines but this plan streams {count}; "
                "use fewer steps or engines per step."
            )
    plan: list[list[StreamEngine]] = []
    next_unit = 1
    for i, q in enumerate(per_step):
        last_of_quarter = q < 3 and (i + 1 == steps or per_step[i + 1] != q)
        take = [(q, engines_per_step - (mix if last_of_quarter else 0))]
        if last_of_quarter and mix:
            take.append((q + 1, mix))
        batch = []
        for quarter, count in take:
            for _ in range(count):
                source_unit = int(queues[quarter].pop(0))
                batch.append(StreamEngine(quarter, QUARTERS[quarter], source_unit, next_unit))
                next_unit += 1
        plan.append(batch)
    return plan


def batch_frame(batch: list[StreamEngine], sources: dict[str, pd.DataFrame], stream: str) -> pd.DataFrame:
    """The readings of one step: each engine's whole history under its stream unit number."""
    parts = []
    for engine in batch:
        source = sources[engine.source]
        rows = source[source["unit"] == engine.source_unit][COLUMNS].copy()
        rows["unit"] = engine.unit
        parts.append(rows)
    frame = pd.concat(parts, ignore_index=True)
    frame.insert(0, "dataset", stream)
    return frame


def true_rul(frame: pd.DataFrame) -> np.ndarray:
    """True RUL at every row of run-to-failure engines: the engine's last cycle minus the cycle."""
    last = frame.groupby(["dataset", "unit"])["cycle"].transform("max")
    return (last - frame["cycle"]).to_numpy(dtype=float)


def latest_window(frame: pd.DataFrame, engines: int) -> pd.DataFrame:
    """The rows of the ``engines`` highest-numbered units: the latest engines a stream delivered."""
    if engines < 1:
        raise UserError(f"A stream window needs at least one engine; got {engines}.")
    newest = np.sort(frame["unit"].unique())[-engines:]
    return frame[frame["unit"].isin(newest)]


# The serving model ---------------------------------------------------------------------------


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
        from models.ensemble import Ensemble

        ensemble = Ensemble.load(registry.bundle_dir(version))
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


def measure(serving: Serving, window: pd.DataFrame, thresholds: drift.Thresholds,
            normalise: bool) -> tuple[dict[str, Any], pd.DataFrame]:
    """Drift share, prediction PSI, live RMSE/F2 and verdict of one window; also its predictions."""
    error, predictions = live(serving, window)
    prediction = drift.prediction_drift(serving.reference_rul, predictions["rul"], thresholds.prediction_psi)
    report = drift.assess(serving.reference, window, normalise=normalise, thresholds=thresholds,
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


# The timeline --------------------------------------------------------------------------------


def simulations_dir() -> Path:
    """Where timelines are written: ``<PM_HOME>/simulations``."""
    folder = config.ensure_home().home / "simulations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_timeline_path(prefix: str = "run") -> Path:
    """A fresh timeline file name, ordered by time."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return simulations_dir() / f"{prefix}-{stamp}.json"


def write_timeline(path: Path, timeline: dict[str, Any]) -> None:
    """Replace ``path`` with the timeline atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(timeline, handle, indent=1, allow_nan=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_timeline(path: str | Path) -> dict[str, Any]:
    """Read a timeline file; UserError naming it if it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"The simulation timeline {path} does not exist.") from None
    except ValueError as err:
        raise UserError(f"The simulation timeline {path} is unreadable: {err}.") from err
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        raise UserError(f"The simulation timeline {path} is not a timeline.")
    return data


def latest_timeline() -> tuple[Path, dict[str, Any]] | None:
    """The newest readable timeline under :func:`simulations_dir`, or None if there is none."""
    for path in sorted(simulations_dir().glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            return path, read_timeline(path)
        except UserError:
            continue
    return None


def summary(timeline: dict[str, Any]) -> dict[str, Any]:
    """The headline of a run: steps, crossings, retrains and the versions that served."""
    steps = timeline["steps"]
    served = sorted({s["model_version"] for s in steps})
    attempts = [s["retrain"] for s in steps if s.get("retrain")]
    return {
        "status": timeline.get("status"),
        "steps_done": len(steps),
        "steps_total": timeline.get("steps_total"),
        "crossings": sum(len(s["crossed"]) for s in steps),
        "retrains": len(attempts),
        "promoted": sum(1 for a in attempts if a.get("promoted"))
        + sum(1 for s in steps if (s.get("shadow") or {}).get("promoted")),
        "versions_served": served,
        "elapsed_s": timeline.get("elapsed_s"),
    }


# Training through the job runner -------------------------------------------------------------


def _train(names: list[str], train_config: TrainConfig, timeout_s: float, notify: Callable[[str], None],
           created_by: str) -> jobs.JobRecord:
    """Export the snapshot of ``names``, run the training job, relay its progress and wait for it.

    If this process stops (cancelled, Ctrl-C) or the timeout passes, the training job is cancelled.
    """
    from core import retrain

    snap = retrain.export_snapshot(names)
    record = retrain.start_job(snap, train_config, created_by)
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


def _t0_model(settings: Settings, sources: dict[str, pd.DataFrame], notify: Callable[[str], None],
              created_by: str) -> tuple[int, str]:
    """The version trained on T0 that serves first (made champion), and how it was found."""
    champion = registry.champion_version()
    versions = registry.list_versions()
    trained_on_t0 = []
    if not versions.empty and "data" in versions.columns:
        trained_on_t0 = sorted(int(v) for v in versions.loc[versions["data"] == T0_DATASET, "version"])
    if champion is not None and champion in trained_on_t0:
        return champion, f"The champion v{champion} was trained on {T0_DATASET} and serves from the start."
    if trained_on_t0:
        version = trained_on_t0[-1]
        note = f"v{version} (trained on {T0_DATASET}) serves from the start"
    else:
        notify(f"no model trained on {T0_DATASET} yet: training one")
        record = _train([T0_DATASET], settings.train_config(), settings.train_timeout_s, notify, created_by)
        if record.state != "succeeded":
            raise UserError(f"Training the T0 model on {T0_DATASET} {record.state}: {record.error or 'no reason given'}")
        version = int(record.result["version"])
        note = f"v{version} was trained on {T0_DATASET} for the simulation and serves from the start"
    if champion != version:
        registry.set_alias(registry.CHAMPION, version)
        previous = f"v{champion}" if champion is not None else "none"
        note += f" (champion alias moved from {previous} to v{version})"
    return version, f"Model {note}."


def _retrain(settings: Settings, notify: Callable[[str], None], created_by: str) -> dict[str, Any]:
    """Retrain on the stream so far; return what happened (job, version, promoted, reason or error)."""
    started = time.monotonic()
    try:
        record = _train([settings.stream], settings.train_config(), settings.train_timeout_s, notify, created_by)
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
        loaded = set(store.dataset_names(con))
        missing = [name for name in QUARTERS if name not in loaded]
        if missing:
            raise UserError(
                f"The simulation streams {', '.join(QUARTERS)}; load {', '.join(missing)} first "
                "(Data page or `python -m core ingest`)."
            )
        return {name: store.readings(con, name) for name in QUARTERS}


def _reset_stream(name: str) -> None:
    with store.connect() as con:
        found = store.find_dataset(con, name)
        if found is None:
            return
        if found["split"] != "stream":
            raise UserError(f"The dataset '{name}' is a {found['split']} dataset, not a stream; choose another name.")
        store.delete_dataset(con, name)


def _crossed(values: dict[str, Any], previous: dict[str, Any] | None, thresholds: drift.Thresholds) -> list[str]:
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
    """Run the whole simulation, writing the timeline to ``timeline_path`` after every step; return it."""
    settings.validate()
    ensure_idle(job_id)
    started = time.monotonic()
    thresholds = drift.Thresholds()
    total = settings.steps
    timeline: dict[str, Any] = {
        "status": "running", "job_id": job_id, "settings": settings.to_dict(), "thresholds": thresholds.to_dict(),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "steps_total": total,
        "quarters": list(QUARTERS), "stream": settings.stream, "steps": [], "events": [], "message": "starting",
        "elapsed_s": 0.0,
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
        _reset_stream(settings.stream)
        version, note = _t0_model(settings, sources, notify, created_by)
        event(0, note)
        serving = Serving.load(version, sources[T0_DATASET].assign(dataset=T0_DATASET), T0_DATASET)
        seen: list[pd.DataFrame] = []
        last_attempt: int | None = None
        previous: dict[str, Any] | None = None
        shadow: Serving | None = None
        for index, batch in enumerate(plan, start=1):
            window = batch_frame(batch, sources, settings.stream)
            with store.connect() as con:
                store.append_readings(con, settings.stream, STREAM_SUBSET, "stream", f"simulation of {', '.join(QUARTERS)}",
                                      window.drop(columns="dataset"))
            seen.append(window)
            values, predictions = measure(serving, window, thresholds, settings.normalise)
            with store.connect() as con:
                store.insert_predictions(con, settings.stream, predictions, str(serving.version))
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
                    registry.set_alias(registry.CHAMPION, shadow.version)
                    if registry.alias_version(registry.CHALLENGER) == shadow.version:
                        registry.clear_alias(registry.CHALLENGER)
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
        cancelled = isinstance(err, (jobs.JobCancelled, KeyboardInterrupt))
        timeline["status"] = "cancelled" if cancelled else "failed"
        timeline["error"] = "The simulation was cancelled." if cancelled else str(err)
        timeline["elapsed_s"] = round(time.monotonic() - started, 1)
        write_timeline(timeline_path, timeline)
        raise
    return timeline


def start_job(settings: Settings, created_by: str = "") -> jobs.JobRecord:
    """Start the simulation as a background job (not exclusive: it starts training jobs itself)."""
    settings.validate()
    ensure_idle()
    path = new_timeline_path("job")
    return jobs.start(
        JOB_KIND, "core.simulate_job", ["--settings", json.dumps(settings.to_dict()), "--timeline", str(path)],
        config=settings.to_dict(), data={"timeline": str(path), "stream": settings.stream},
        created_by=created_by, exclusive=False,
    )


def latest_job() -> jobs.JobRecord | None:
    """The newest simulation job, or None."""
    for record in jobs.list_jobs(limit=50):
        if record.kind == JOB_KIND:
            return record
    return None
