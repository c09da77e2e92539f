"""The Drift page's default comparison, computed ahead of its first visit and kept on disk.

The page opens on one comparison: the serving model's training data against ``train_FD002`` (or the first other
dataset), raw values, PSI (:func:`default_choice`). The server computes it in the background after data or model
changes (its watcher calls a :class:`Refresher` after scoring), and the page computes it itself when it finds none;
either way the result is written to ``$PM_HOME/drift/default.json`` with the key it was computed for (datasets, their
row counts and last loads, model version), so a first visit, even after a restart, reads it instead of comparing
whole datasets inside its rerun. A key that no longer matches is a miss: the comparison is computed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import config
from core.data import queries, store
from core.errors import UserError
from core.monitoring import drift, multivariate, prediction_drift, verdicts

LOG = logging.getLogger("core.monitoring.default_drift")


@dataclass(frozen=True)
class Choice:
    """The comparison the Drift page opens on: reference datasets, current dataset, whether the reference is the
    model's training data, whether training engines are cut at the current engines' ages, and the model version."""

    reference: tuple[str, ...]
    current: str
    against_model: bool
    matched: bool
    version: int | None


def default_current(names: Sequence[str], reference: Sequence[str]) -> str:
    """``train_FD002`` when loaded and not in the reference, else the first other dataset (else the second, or only,
    dataset)."""
    others = [n for n in names if n not in reference]
    return "train_FD002" if "train_FD002" in others else others[0] if others else names[min(1, len(names) - 1)]


def default_choice(listing: pd.DataFrame, model_data: Sequence[str], version: int | None) -> Choice | None:
    """The page's default comparison for this listing and serving model (None when nothing is loaded)."""
    names = list(listing["name"])
    if not names:
        return None
    against_model = bool(version is not None and model_data and all(n in names for n in model_data))
    reference = tuple(model_data) if against_model else (names[0],)
    current = default_current(names, reference)
    roles = dict(zip(listing["name"], listing["role"], strict=True))
    return Choice(reference, current, against_model, against_model and roles.get(current) != "history", version)


def key(listing: pd.DataFrame, choice: Choice) -> str:
    """What the default comparison depends on, as a digest: the choice and each dataset's rows, last load and closed
    engines."""
    rows = {row["name"]: row for row in listing.to_dict("records")}
    names = [*choice.reference, choice.current]
    state = [[n, int(rows[n]["rows"]), str(rows[n]["last_loaded_at"]), int(rows[n]["closed"])]
             for n in names if n in rows]
    text = json.dumps({"choice": asdict(choice), "data": state}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _path() -> Path:
    return config.paths().home / "drift" / "default.json"


def load(digest: str) -> dict[str, Any] | None:
    """The stored result for ``digest``, or None when none is stored for it (or the file cannot be read)."""
    try:
        kept = json.loads(_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept.get("result") if isinstance(kept, dict) and kept.get("key") == digest else None


def save(digest: str, result: dict[str, Any]) -> None:
    """Write the result for ``digest`` atomically (a home that cannot be written is logged and left as it is)."""
    path = _path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump({"key": digest, "result": result}, out)
        os.replace(temporary, path)
    except OSError as err:
        LOG.warning("The default drift comparison was not kept on disk: %s", err)


def result_of(comparison: verdicts.TrainingComparison, reference: pd.DataFrame, current: pd.DataFrame,
              reads: dict[str, Any]) -> dict[str, Any]:
    """The page's view of a comparison: report, predicted-RUL samples, the part judged against, each part's share,
    the multivariate score (raw values) and what each side read."""
    prediction = {"psi": comparison.report.prediction_psi, "reason": comparison.report.prediction_psi_reason,
                  "reference": [] if comparison.reference_rul is None else comparison.reference_rul.tolist(),
                  "current": [] if comparison.current_rul is None else comparison.current_rul.tolist()}
    try:
        scored = multivariate.measure(reference, current).to_dict()
    except UserError as err:
        scored = {"reason": str(err)}
    return {"report": comparison.report.to_dict(), "prediction": prediction, "reference": list(comparison.reference),
            "shares": [[list(part), share] for part, share in comparison.shares.items()], "multivariate": scored,
            "reads": reads}


def compute(choice: Choice, predict: Callable[[pd.DataFrame], np.ndarray] | None) -> dict[str, Any]:
    """The default comparison, computed now (as the page computes it: :func:`verdicts.against_training`)."""
    sides: dict[tuple[str, ...], tuple[pd.DataFrame, drift.Sample]] = {}
    with store.connect(read_only=True) as con:
        def read(names: tuple[str, ...]) -> pd.DataFrame:
            if names not in sides:
                sides[names] = drift.read_side(con, names)
            return sides[names][0]

        current = read((choice.current,))
        comparison = verdicts.against_training(
            choice.reference, current, read, None if predict is None else (lambda _s, _n, rows: predict(rows)),
            matched=choice.matched)
    judged = read(comparison.reference)
    judged = drift.match_life_stage(judged, current) if choice.matched else judged
    reads = {"reference": sides[comparison.reference][1].to_dict(), "current": sides[(choice.current,)][1].to_dict()}
    return result_of(comparison, judged, current, reads)


class Refresher:
    """Computes and keeps the default comparison when its key changed (the server's watcher calls it after scoring).

    ``champion`` gives the serving version (None without a model), ``ensemble`` the loaded model of a version and
    ``training`` the datasets a version was trained on.
    """

    def __init__(self, champion: Callable[[], int | None], ensemble: Callable[[int], Any],
                 training: Callable[[int], list[str]]) -> None:
        self.champion = champion
        self.ensemble = ensemble
        self.training = training

    def __call__(self) -> bool:
        """Refresh when needed; True when a comparison was computed. A refusal of the store is logged."""
        try:
            with store.connect(read_only=True) as con:
                listing = queries.list_datasets(con)
            version = self.champion()
            choice = default_choice(listing, self.training(version) if version is not None else [], version)
            if choice is None:
                return False
            digest = key(listing, choice)
            if load(digest) is not None:
                return False
            model = self.ensemble(version) if version is not None else None
            predict = None if model is None else (lambda rows: prediction_drift.predicted_rul(model, rows))
            save(digest, compute(choice, predict))
            return True
        except UserError as err:
            LOG.warning("The default drift comparison was not refreshed: %s", err)
            return False
