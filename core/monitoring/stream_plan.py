"""The simulated production stream: its settings and the plan of which engines arrive at each step.

Engines of the four training sets (run to failure, so the true RUL is known at every cycle) are streamed
in order, a batch of whole engines per step; the last step of each quarter mixes in a few engines of the
next quarter. Each quarter contributes ``steps/4 x engines_per_step`` engines, drawn with a fixed seed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from core.data.cmapss import COLUMNS
from core.errors import UserError

if TYPE_CHECKING:  # torch-backed modules are imported where used, so `python -m core --help` stays fast
    from models.training import TrainConfig


QUARTERS: tuple[str, ...] = ("train_FD001", "train_FD002", "train_FD003", "train_FD004")
"""The source of each quarter T0..T3."""
T0_DATASET = QUARTERS[0]
STREAM_NAME = "stream_sim"


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
